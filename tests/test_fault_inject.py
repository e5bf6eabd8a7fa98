"""Tests for hwemu.fault_inject: should_fail_ex's order of checks, failslab and
fail_page_alloc filters, messages, debugfs files, reproducibility and thread safety,
checked against lib/fault-inject.c, mm/failslab.c and mm/fail_page_alloc.c."""
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

import hwemu
from hwemu import current, run_in_interrupt
from hwemu.config import (ConfigError, FailPageAllocConfig, FailslabConfig, FaultAttrConfig,
                          FaultInjectionConfig, load_config)
from hwemu.fault_attr import FAIL_PAGE_ALLOC_KNOBS, FAILSLAB_KNOBS, FAULT_ATTR_KNOBS
from hwemu.fault_inject import (DEBUGFS_ROOT, FAULT_NOWARN, FailPageAllocAttr, FailslabAttr,
                                FaultAttr, FaultInjection, kstrtobool, should_fail, should_fail_ex)

# include/linux/gfp_types.h
HIGHMEM, DIRECT_RECLAIM, KSWAPD_RECLAIM = 0x2, 0x400, 0x800
NOWARN, NOFAIL = 0x2000, 0x8000
GFP_KERNEL, GFP_ATOMIC, GFP_NOWAIT, GFP_HIGHUSER = 0xCC0, 0x820, 0x2800, 0x100CC2

FORCING = "FAULT_INJECTION: forcing a failure."


def log_lines(m):
    """dmesg text without the timestamps."""
    return [line.split("] ", 1)[1] for line in m.dmesg().splitlines()]


def fault(machine, **knobs):
    """A FaultInjection for ``machine`` whose mempool attr has ``knobs`` set."""
    fi = FaultInjection(machine, FaultInjectionConfig())
    for name, value in knobs.items():
        setattr(fi.fail_mempool_alloc, name, value)
    return fi


def outcomes(attr, n, size=1, flags=FAULT_NOWARN):
    return [should_fail_ex(attr, size, flags) for _ in range(n)]


# ---------------------------------------------------------------- defaults


def test_kernel_defaults(machine):
    fi = FaultInjection(machine)  # no config: FAULT_ATTR_INITIALIZER and friends
    assert set(fi.attrs) == {"failslab", "fail_page_alloc", "fail_mempool_alloc",
                             "fail_mempool_alloc_bulk"}
    assert isinstance(fi.failslab, FailslabAttr)
    assert isinstance(fi.fail_page_alloc, FailPageAllocAttr)
    for attr in fi.attrs.values():
        assert (attr.probability, attr.interval, attr.times, attr.space, attr.verbose,
                attr.task_filter, attr.count) == (0, 1, 1, 0, 2, False, 0)
        assert (attr.ratelimit_interval, attr.ratelimit_burst) == (0, 10)
    assert (fi.failslab.ignore_gfp_wait, fi.failslab.cache_filter) == (True, False)
    fpa = fi.fail_page_alloc
    assert (fpa.ignore_gfp_wait, fpa.ignore_gfp_highmem, fpa.min_order) == (True, True, 1)
    assert not hasattr(fi.fail_mempool_alloc, "ignore_gfp_wait")


def test_probability_zero_never_fails(machine):
    fi = fault(machine, times=-1)
    assert not any(should_fail(fi.fail_mempool_alloc, 1) for _ in range(1000))
    assert fi.fail_mempool_alloc.count == 0
    assert FORCING not in machine.dmesg()


def test_config_values_reach_the_attributes(machine):
    cfg = FaultInjectionConfig(
        seed=7,
        failslab=FailslabConfig(probability=50, interval=3, times=-1, space="4K",
                                verbose=1, task_filter=True, ignore_gfp_wait=False,
                                cache_filter=True),
        fail_page_alloc=FailPageAllocConfig(ignore_gfp_highmem=False, min_order=0),
        fail_mempool_alloc_bulk=FaultAttrConfig(probability=100, times=5))
    fi = FaultInjection(machine, cfg)
    fs = fi.failslab
    assert (fs.probability, fs.interval, fs.times, fs.space, fs.verbose, fs.task_filter,
            fs.ignore_gfp_wait, fs.cache_filter) == (50, 3, -1, 4096, 1, True, False, True)
    fpa, bulk = fi.fail_page_alloc, fi.fail_mempool_alloc_bulk
    assert (fpa.ignore_gfp_highmem, fpa.min_order) == (False, 0)
    assert (bulk.probability, bulk.times) == (100, 5)
    assert fi.seed == 7


def test_booted_config_has_fault_injection(boot):
    m = boot("tiny", fault_injection__seed=3, fault_injection__failslab__probability=25,
             fault_injection__fail_page_alloc__min_order=0)
    fi = FaultInjection(m, m.config.fault_injection)
    assert (fi.seed, fi.failslab.probability, fi.fail_page_alloc.min_order) == (3, 25, 0)


# ---------------------------------------------------------------- order of checks


def test_fail_nth_beats_probability_zero(machine):
    fi = fault(machine)  # probability 0, times 1
    attr = fi.fail_mempool_alloc
    task = current()
    task.fail_nth = 3
    assert outcomes(attr, 5, flags=0) == [False, False, True, False, False]
    assert task.fail_nth == 0
    assert attr.times == 0  # the fail-nth failure used up times
    assert FORCING in machine.dmesg()
    task.fail_nth = 2  # fail-nth overrides times == 0 too
    assert outcomes(attr, 3) == [False, True, False]
    assert attr.times == 0  # atomic_dec_not_zero: stays 0


def test_fail_nth_is_per_task_and_only_in_task_context(machine):
    attr = fault(machine).fail_mempool_alloc
    task = current()
    task.fail_nth = 1
    assert run_in_interrupt(should_fail_ex, attr, 1, FAULT_NOWARN) is False
    assert run_in_interrupt(should_fail_ex, attr, 1, FAULT_NOWARN, softirq=True) is False
    assert task.fail_nth == 1  # untouched in interrupt context
    other = machine.spawn(lambda: (current().fail_nth, outcomes(attr, 3)))
    assert other.join(timeout=10) == (0, [False] * 3)  # another task's knob is its own
    assert should_fail_ex(attr, 1, FAULT_NOWARN) is True
    assert task.fail_nth == 0


def test_times_counts_down_and_stops(machine):
    attr = fault(machine, probability=100, times=3).fail_mempool_alloc
    assert outcomes(attr, 6) == [True] * 3 + [False] * 3
    assert attr.times == 0
    attr.times = -1  # unlimited, and never decremented
    assert all(outcomes(attr, 50))
    assert attr.times == -1


def test_interval_fails_every_nth_eligible_call(machine):
    attr = fault(machine, probability=100, times=-1, interval=4).fail_mempool_alloc
    assert outcomes(attr, 12) == [False, False, False, True] * 3
    assert attr.count == 12
    attr.interval = 1  # interval 1: the counter no longer moves
    assert all(outcomes(attr, 5))
    assert attr.count == 12


def test_space_budget_is_consumed_before_any_failure(machine):
    attr = fault(machine, probability=100, times=-1, interval=2,
                 space=10).fail_mempool_alloc
    # space > size: consumed, no failure, and the interval counter does not move
    assert outcomes(attr, 2, size=4) == [False, False]
    assert (attr.space, attr.count) == (2, 0)
    # space 2 is not > 4: from here the interval decides; space stays
    assert outcomes(attr, 4, size=4) == [False, True, False, True]
    assert (attr.space, attr.count) == (2, 4)


def test_space_equal_to_size_does_not_protect(machine):
    attr = fault(machine, probability=100, space=4).fail_mempool_alloc
    assert should_fail_ex(attr, 4, FAULT_NOWARN)  # only space > size passes a call
    assert attr.space == 4


def test_times_zero_is_checked_before_space(machine):
    attr = fault(machine, probability=100, times=0, space=100).fail_mempool_alloc
    assert outcomes(attr, 3, size=10) == [False] * 3
    assert attr.space == 100


def test_task_filter(machine):
    attr = fault(machine, probability=100, times=-1, task_filter=True).fail_mempool_alloc
    task = current()
    assert outcomes(attr, 3) == [False] * 3
    task.make_it_fail = True
    try:
        assert outcomes(attr, 3) == [True] * 3
        # never in interrupt context, even on top of a task with make-it-fail
        assert run_in_interrupt(should_fail_ex, attr, 1, FAULT_NOWARN) is False
        other = machine.spawn(lambda: outcomes(attr, 3))
        assert other.join(timeout=10) == [False] * 3  # make-it-fail is per task
    finally:
        task.make_it_fail = False
    attr.task_filter = False
    assert run_in_interrupt(should_fail_ex, attr, 1, FAULT_NOWARN) is True


def test_task_filter_is_checked_after_probability_zero(machine):
    attr = fault(machine, task_filter=True).fail_mempool_alloc
    current().make_it_fail = True
    try:
        assert outcomes(attr, 10) == [False] * 10
    finally:
        current().make_it_fail = False


# ---------------------------------------------------------------- randomness


def test_probability_holds_statistically(machine):
    attr = fault(machine, probability=30, times=-1, verbose=0).fail_mempool_alloc
    n, p = 10_000, 0.30
    failures = sum(outcomes(attr, n, flags=0))
    sigma = math.sqrt(n * p * (1 - p))  # ~45.8
    assert abs(failures - n * p) < 4 * sigma
    assert attr.times == -1


def test_probability_100_always_fails(machine):
    attr = fault(machine, probability=100, times=-1).fail_mempool_alloc
    assert all(outcomes(attr, 1000))


def test_sequence_reproducible_per_seed_and_per_attribute(machine):
    def sequence(seed, interleave=False):
        fi = FaultInjection(machine, FaultInjectionConfig(seed=seed))
        for attr in (fi.fail_mempool_alloc, fi.fail_mempool_alloc_bulk):
            attr.probability, attr.times = 50, -1
        result = []
        for _ in range(200):
            if interleave:  # another attribute's activity must not matter
                should_fail_ex(fi.fail_mempool_alloc_bulk, 1, FAULT_NOWARN)
            result.append(should_fail_ex(fi.fail_mempool_alloc, 1, FAULT_NOWARN))
        return result

    first = sequence(1)
    assert sequence(1) == first
    assert sequence(1, interleave=True) == first
    assert sequence(2) != first
    assert 60 < sum(first) < 140


def test_attributes_have_different_sequences(machine):
    fi = FaultInjection(machine, FaultInjectionConfig(seed=5))
    seqs = []
    for attr in (fi.fail_mempool_alloc, fi.fail_mempool_alloc_bulk):
        attr.probability, attr.times = 50, -1
        seqs.append(outcomes(attr, 100))
    assert seqs[0] != seqs[1]


# ---------------------------------------------------------------- messages


def test_verbose_2_prints_message_and_stack(machine):
    fi = FaultInjection(machine)
    fi.failslab.probability = 100
    machine.log.clear()
    assert fi.should_failslab("kmalloc-64", 64, GFP_ATOMIC)
    lines = log_lines(machine)
    assert lines[:2] == [FORCING,
                         "name failslab, interval 1, probability 100, space 0, times 1"]
    assert lines[2].startswith("CPU: 0 UID: 0 PID: 1 Comm: init ")
    assert lines[3].startswith("Hardware name: hwemu tiny")
    assert lines[4:7] == ["Call Trace:", " <TASK>", " dump_stack_lvl+0x0/0x0"]
    frames = [line.split("+")[0].strip() for line in lines[7:-1]]
    assert frames[:3] == ["fail_dump", "should_fail_ex", "should_failslab"]
    assert "test_verbose_2_prints_message_and_stack" in frames
    assert lines[-1] == " </TASK>"
    assert fi.failslab.times == 0


def test_verbose_1_prints_message_only(machine):
    attr = fault(machine, probability=100, times=-1, interval=2, space=3,
                 verbose=1).fail_mempool_alloc
    should_fail_ex(attr, 5, 0)  # space 3 is not > 5: the counter starts
    machine.log.clear()
    assert should_fail_ex(attr, 5, 0)
    assert log_lines(machine) == [
        FORCING,
        "name fail_mempool_alloc, interval 2, probability 100, space 3, times -1"]


def test_verbose_0_prints_nothing(machine):
    attr = fault(machine, probability=100, times=2, verbose=0).fail_mempool_alloc
    machine.log.clear()
    assert should_fail(attr, 1)
    assert machine.dmesg() == ""
    assert attr.times == 1


def test_nowarn_prints_nothing_but_fails(machine):
    attr = fault(machine, probability=100, times=2).fail_mempool_alloc
    machine.log.clear()
    assert should_fail_ex(attr, 1, FAULT_NOWARN)
    assert machine.dmesg() == ""
    assert attr.times == 1  # still counted
    current().fail_nth = 1  # the fail-nth path honours FAULT_NOWARN too
    assert should_fail_ex(attr, 1, FAULT_NOWARN)
    assert machine.dmesg() == ""


def test_message_shows_times_before_the_decrement(machine):
    attr = fault(machine, probability=100, times=3, verbose=1).fail_mempool_alloc
    machine.log.clear()
    outcomes(attr, 3, flags=0)
    names = [line for line in log_lines(machine) if line.startswith("name ")]
    assert [line.rsplit(" ", 1)[1] for line in names] == ["3", "2", "1"]


def test_verbose_ratelimit(machine):
    attr = fault(machine, probability=100, times=-1, verbose=1).fail_mempool_alloc
    attr.ratelimit_interval, attr.ratelimit_burst = 10**9, 2  # jiffies: never ends here
    machine.log.clear()
    assert all(outcomes(attr, 5, flags=0))
    assert log_lines(machine).count(FORCING) == 2
    attr.ratelimit_interval = 1  # 1 jiffy
    hwemu.msleep(3)
    machine.log.clear()
    assert should_fail(attr, 1)
    assert log_lines(machine)[:2] == ["fail_dump: 3 callbacks suppressed", FORCING]


# ---------------------------------------------------------------- failslab


def test_failslab_filters(machine):
    fi = FaultInjection(machine)
    fs = fi.failslab
    fs.probability, fs.times, fs.verbose = 100, -1, 0
    assert not fi.should_failslab("kmem_cache", 256, GFP_ATOMIC, bootstrap=True)
    assert not fi.should_failslab("kmalloc-64", 64, GFP_ATOMIC | NOFAIL)
    # ignore-gfp-wait looks at __GFP_DIRECT_RECLAIM only, not kswapd reclaim
    assert not fi.should_failslab("kmalloc-64", 64, GFP_KERNEL)
    assert not fi.should_failslab("kmalloc-64", 64, DIRECT_RECLAIM)
    assert fi.should_failslab("kmalloc-64", 64, GFP_ATOMIC)
    assert fi.should_failslab("kmalloc-64", 64, KSWAPD_RECLAIM)
    assert fi.should_failslab("kmalloc-64", 64, 0)
    fs.ignore_gfp_wait = False
    assert fi.should_failslab("kmalloc-64", 64, GFP_KERNEL)
    assert not fi.should_failslab("kmalloc-64", 64, GFP_KERNEL | NOFAIL)
    fs.cache_filter = True
    assert not fi.should_failslab("kmalloc-64", 64, GFP_KERNEL)
    assert fi.should_failslab("my_cache", 64, GFP_KERNEL, cache_failslab=True)
    assert not fi.should_failslab("kmem_cache", 64, GFP_KERNEL, cache_failslab=True,
                                  bootstrap=True)


def test_failslab_nowarn_and_object_size(machine):
    fi = FaultInjection(machine)
    fs = fi.failslab
    fs.probability, fs.times, fs.space = 100, -1, 100
    machine.log.clear()
    assert not fi.should_failslab("c", 60, GFP_NOWAIT)  # space 100 > 60
    assert fs.space == 40
    assert fi.should_failslab("c", 60, GFP_NOWAIT)  # GFP_NOWAIT has __GFP_NOWARN
    assert machine.dmesg() == ""
    assert fi.should_failslab("c", 60, GFP_ATOMIC)
    assert FORCING in machine.dmesg()


def test_failslab_checks_before_should_fail_leave_state_alone(machine):
    fi = FaultInjection(machine)
    fs = fi.failslab
    fs.probability, fs.interval, fs.space = 100, 2, 50
    current().fail_nth = 1
    assert not fi.should_failslab("c", 10, GFP_KERNEL)  # filtered before should_fail_ex
    assert (current().fail_nth, fs.space, fs.count) == (1, 50, 0)
    current().fail_nth = 0


# ---------------------------------------------------------------- fail_page_alloc


def test_fail_page_alloc_filters(machine):
    fi = FaultInjection(machine)
    fpa = fi.fail_page_alloc
    fpa.probability, fpa.times, fpa.verbose = 100, -1, 0
    assert not fi.should_fail_alloc_page(GFP_ATOMIC, 0)  # min-order 1 by default
    assert fi.should_fail_alloc_page(GFP_ATOMIC, 1)
    assert fi.should_fail_alloc_page(GFP_ATOMIC, 10)
    assert not fi.should_fail_alloc_page(GFP_ATOMIC | NOFAIL, 1)
    assert not fi.should_fail_alloc_page(GFP_ATOMIC | HIGHMEM, 1)
    assert not fi.should_fail_alloc_page(GFP_KERNEL, 1)
    assert not fi.should_fail_alloc_page(GFP_HIGHUSER, 2)
    fpa.min_order = 0
    assert fi.should_fail_alloc_page(GFP_ATOMIC, 0)
    fpa.ignore_gfp_highmem = False
    assert fi.should_fail_alloc_page(GFP_ATOMIC | HIGHMEM, 1)
    assert not fi.should_fail_alloc_page(GFP_HIGHUSER, 1)  # still may sleep
    fpa.ignore_gfp_wait = False
    assert fi.should_fail_alloc_page(GFP_HIGHUSER, 1)
    assert fi.should_fail_alloc_page(GFP_KERNEL, 0)
    assert not fi.should_fail_alloc_page(GFP_KERNEL | NOFAIL, 3)


def test_fail_page_alloc_size_is_pages_and_nowarn(machine):
    fi = FaultInjection(machine)
    fpa = fi.fail_page_alloc
    fpa.probability, fpa.times, fpa.space = 100, 1, 10
    machine.log.clear()
    assert not fi.should_fail_alloc_page(GFP_NOWAIT, 3)  # 10 > 8 pages
    assert fpa.space == 2
    assert fi.should_fail_alloc_page(GFP_NOWAIT, 2)  # 2 is not > 4
    assert machine.dmesg() == ""  # __GFP_NOWARN
    assert fpa.times == 0
    assert not fi.should_fail_alloc_page(GFP_ATOMIC, 2)


def test_mempool_attributes(machine):
    fi = FaultInjection(machine)
    bulk = fi.fail_mempool_alloc_bulk
    assert not should_fail_ex(bulk, 1, FAULT_NOWARN)  # probability 0 by default
    bulk.probability = 100
    machine.log.clear()
    assert should_fail_ex(bulk, 1, FAULT_NOWARN)
    assert not should_fail_ex(bulk, 1, FAULT_NOWARN)  # times 1
    assert machine.dmesg() == ""


# ---------------------------------------------------------------- debugfs


def test_debugfs_read_defaults(machine):
    fi = FaultInjection(machine)
    d = DEBUGFS_ROOT
    assert fi.read(f"{d}/failslab/probability") == "0\n"
    assert fi.read(f"{d}/failslab/interval") == "1\n"
    assert fi.read(f"{d}/failslab/times") == "1\n"
    assert fi.read(f"{d}/failslab/space") == "0\n"
    assert fi.read(f"{d}/failslab/verbose") == "2\n"
    assert fi.read(f"{d}/failslab/task-filter") == "N\n"
    assert fi.read(f"{d}/failslab/ignore-gfp-wait") == "Y\n"
    assert fi.read(f"{d}/failslab/cache-filter") == "N\n"
    assert fi.read(f"{d}/fail_page_alloc/ignore-gfp-highmem") == "Y\n"
    assert fi.read(f"{d}/fail_page_alloc/min-order") == "1\n"
    assert fi.read(f"{d}/fail_mempool_alloc/verbose_ratelimit_interval_ms") == "0\n"
    assert fi.read(f"{d}/fail_mempool_alloc_bulk/verbose_ratelimit_burst") == "10\n"
    assert fi.read("failslab/probability") == "0\n"  # relative to debugfs


def test_debugfs_write(machine):
    fi = FaultInjection(machine)
    d = DEBUGFS_ROOT
    fi.write(f"{d}/failslab/probability", "100\n")  # what `echo 100 >` writes
    fi.write(f"{d}/failslab/interval", "0x10")
    fi.write(f"{d}/failslab/space", "010")  # base 0: octal
    fi.write(f"{d}/failslab/times", "-1")
    fi.write(f"{d}/failslab/verbose", 1)
    fi.write(f"{d}/fail_page_alloc/min-order", "0")
    assert (fi.failslab.probability, fi.failslab.interval, fi.failslab.space,
            fi.failslab.times, fi.failslab.verbose) == (100, 16, 8, -1, 1)
    assert fi.fail_page_alloc.min_order == 0
    assert fi.read(f"{d}/failslab/times") == "-1\n"
    # the documentation's `printf %#x -1 > times`: atomic_set() truncates to int
    fi.write(f"{d}/fail_page_alloc/times", "0xffffffff")
    assert fi.fail_page_alloc.times == -1


@pytest.mark.parametrize("text, value", [
    ("Y", True), ("y\n", True), ("1", True), ("yes", True), ("on", True), ("true", True),
    ("N", False), ("n\n", False), ("0", False), ("off", False), ("false", False),
])
def test_debugfs_bools(machine, text, value):
    fi = FaultInjection(machine)
    path = f"{DEBUGFS_ROOT}/fail_page_alloc/ignore-gfp-wait"
    fi.write(path, "N" if value else "Y")
    fi.write(path, text)
    assert fi.fail_page_alloc.ignore_gfp_wait is value
    assert fi.read(path) == ("Y\n" if value else "N\n")


def test_debugfs_bool_from_python_values(machine):
    fi = FaultInjection(machine)
    fi.write(f"{DEBUGFS_ROOT}/failslab/task-filter", True)
    assert fi.read(f"{DEBUGFS_ROOT}/failslab/task-filter") == "Y\n"
    fi.write(f"{DEBUGFS_ROOT}/failslab/cache-filter", 1)
    assert fi.failslab.cache_filter is True


@pytest.mark.parametrize("text", ["x", "", "o", "2", "maybe", "-"])
def test_kstrtobool_rejects(text):
    with pytest.raises(ValueError):
        kstrtobool(text)


@pytest.mark.parametrize("file, text, message", [
    ("failslab/probability", "101", "failslab.probability: must be 0..100"),
    ("failslab/probability", "-1", "invalid argument '-1'"),  # unsigned: kstrtoull
    ("failslab/probability", "ten", "invalid argument 'ten'"),
    ("failslab/interval", "0", "failslab.interval: must be 1.."),
    ("failslab/times", "-2", "failslab.times: must be -1.."),
    ("failslab/space", "-5", "failslab.space: must be 0.."),
    ("failslab/verbose", "3", "failslab.verbose: must be 0..2"),
    ("failslab/task-filter", "maybe", "invalid argument 'maybe'"),
    ("fail_page_alloc/min-order", "11", "fail_page_alloc.min_order: must be 0..10"),
    ("failslab/interval", "0x", "invalid argument '0x'"),
    ("failslab/interval", "09", "invalid argument '09'"),  # octal
])
def test_debugfs_write_errors(machine, file, text, message):
    fi = FaultInjection(machine)
    before = fi.read(file)
    with pytest.raises(ValueError) as info:
        fi.write(f"{DEBUGFS_ROOT}/{file}", text)
    assert str(info.value).startswith(f"{DEBUGFS_ROOT}/{file}: ")
    assert message in str(info.value)
    assert fi.read(file) == before


def test_ulong_knobs_are_the_machines_unsigned_long(boot):
    """On i386 an unsigned long knob ends at 2**32 - 1: set from Python, 2**32 is
    refused (ERANGE, as kstrtoul's); written to debugfs, the u64 debugfs parses is
    stored in the unsigned long, which keeps its low 32 bits (debugfs_ulong_set())."""
    fi = FaultInjection(boot("i386-highmem"))
    with pytest.raises(ValueError, match=r"failslab\.interval: must be 1\.\.4294967295, "
                                         r"got 4294967296"):
        fi.failslab.interval = 1 << 32
    fi.failslab.interval = (1 << 32) - 1
    assert fi.read("failslab/interval") == "4294967295\n"
    fi.write(f"{DEBUGFS_ROOT}/failslab/interval", str((1 << 32) + 3))
    assert fi.failslab.interval == 3
    with pytest.raises(ValueError, match=r"failslab\.interval: must be 1\.\.4294967295, "
                                         r"got 0"):
        fi.write(f"{DEBUGFS_ROOT}/failslab/interval", str(1 << 32))   # wraps to 0
    assert fi.failslab.interval == 3
    fi.write(f"{DEBUGFS_ROOT}/failslab/probability", str((1 << 32) + 100))
    assert fi.failslab.probability == 100
    # x86_64's unsigned long takes it.
    fi64 = FaultInjection(boot("tiny"))
    fi64.failslab.interval = 1 << 32
    assert fi64.read("failslab/interval") == "4294967296\n"


def test_config_refuses_a_ulong_knob_beyond_the_machines():
    with pytest.raises(ConfigError) as info:
        load_config("i386-highmem",
                    overrides={"fault_injection.fail_page_alloc.interval": 1 << 32})
    assert "fault_injection.fail_page_alloc.interval: must be 1..4294967295 (an unsigned " \
        "long of i386), got 4294967296" in str(info.value)
    cfg = load_config(overrides={"fault_injection.fail_page_alloc.interval": 1 << 32})
    assert cfg.fault_injection.fail_page_alloc.interval == 1 << 32


@pytest.mark.parametrize("path", [
    f"{DEBUGFS_ROOT}/failslab/min-order",  # fail_page_alloc only
    f"{DEBUGFS_ROOT}/fail_mempool_alloc/ignore-gfp-wait",
    f"{DEBUGFS_ROOT}/failslab/stacktrace-depth",  # not emulated
    f"{DEBUGFS_ROOT}/fail_futex/probability",
    f"{DEBUGFS_ROOT}/failslab",
    f"{DEBUGFS_ROOT}/failslab/probability/x",
    "/proc/self/fail-nth",
])
def test_debugfs_unknown_paths(machine, path):
    fi = FaultInjection(machine)
    with pytest.raises(FileNotFoundError) as info:
        fi.read(path)
    assert info.value.filename == path
    assert path in str(info.value)
    with pytest.raises(FileNotFoundError):
        fi.write(path, "1")


def test_debugfs_files(machine):
    files = FaultInjection(machine).files()
    assert len(files) == 4 * 8 + 2 + 3
    assert f"{DEBUGFS_ROOT}/failslab/cache-filter" in files
    assert f"{DEBUGFS_ROOT}/fail_page_alloc/min-order" in files
    assert f"{DEBUGFS_ROOT}/fail_mempool_alloc_bulk/task-filter" in files


# ---------------------------------------------------------------- run-time validation


@pytest.mark.parametrize("attr, knob, value, message", [
    ("failslab", "probability", 101,
     "failslab.probability: must be 0..100 (percent), got 101"),
    ("failslab", "probability", -1, "failslab.probability: must be 0..100"),
    ("failslab", "interval", 0, "failslab.interval: must be 1.."),
    ("failslab", "times", -2, "failslab.times: must be -1.."),
    ("failslab", "space", -1, "failslab.space: must be 0.."),
    ("failslab", "space", 1 << 31, "failslab.space: must be 0..2147483647"),
    ("failslab", "verbose", 3, "failslab.verbose: must be 0..2, got 3"),
    ("failslab", "probability", 5.0, "failslab.probability: expected an integer"),
    ("failslab", "probability", True, "failslab.probability: expected an integer"),
    ("failslab", "task_filter", 1, "failslab.task_filter: expected True or False"),
    ("failslab", "cache_filter", "Y", "failslab.cache_filter: expected True or False"),
    ("fail_page_alloc", "min_order", 11, "fail_page_alloc.min_order: must be 0..10"),
    ("fail_page_alloc", "ignore_gfp_highmem", None, "expected True or False"),
])
def test_runtime_validation(machine, attr, knob, value, message):
    fa = getattr(FaultInjection(machine), attr)
    before = getattr(fa, knob)
    with pytest.raises(ValueError) as info:
        setattr(fa, knob, value)
    assert message in str(info.value)
    assert getattr(fa, knob) == before


def test_unknown_knob_is_an_error(machine):
    fi = FaultInjection(machine)
    with pytest.raises(AttributeError, match="did you mean 'probability'"):
        fi.failslab.probabilty = 5
    with pytest.raises(AttributeError, match="no knob 'min_order'"):
        fi.failslab.min_order = 0
    with pytest.raises(AttributeError):
        fi.failslab.count = 0  # internal state, not a knob


def test_attr_standalone(machine):
    attr = FaultAttr(machine, "fail_test")
    attr.probability = 100
    assert should_fail_ex(attr, 1, FAULT_NOWARN)
    assert "fail_test" in repr(attr)


# ---------------------------------------------------------------- one table of knobs

TABLES = [(FaultAttrConfig, FaultAttr, FAULT_ATTR_KNOBS),
          (FailslabConfig, FailslabAttr, FAILSLAB_KNOBS),
          (FailPageAllocConfig, FailPageAllocAttr, FAIL_PAGE_ALLOC_KNOBS)]


@pytest.mark.parametrize("model, attr_class, knobs", TABLES,
                         ids=lambda x: getattr(x, "__name__", ""))
def test_config_models_are_built_from_the_knob_table(model, attr_class, knobs):
    """Every knob the config sets is a field with the table's default, bounds and
    description, in the table's order; the runtime attribute uses the same rows."""
    assert attr_class.KNOBS is knobs
    assert list(model.model_fields) == [k.attr for k in knobs if k.in_config]
    for knob in (k for k in knobs if k.in_config):
        field = model.model_fields[knob.attr]
        assert (field.default, field.description) == (knob.default, knob.description)
        if knob.ctype == "bool":
            continue
        assert getattr(model(**{knob.attr: knob.lo}), knob.attr) == knob.lo
        assert getattr(model(**{knob.attr: knob.hi}), knob.attr) == knob.hi
        for bad in (knob.lo - 1, knob.hi + 1):
            with pytest.raises(ValidationError):
                model(**{knob.attr: bad})


def test_verbose_ratelimit_is_set_at_run_time_only():
    assert [k.file for k in FAULT_ATTR_KNOBS if not k.in_config] == [
        "verbose_ratelimit_interval_ms", "verbose_ratelimit_burst"]
    assert "ratelimit_burst" not in FaultAttrConfig.model_fields


def test_runtime_knobs_take_the_table_defaults_and_bounds(machine):
    for attr in FaultInjection(machine).attrs.values():
        for knob in attr.KNOBS:
            assert getattr(attr, knob.attr) == knob.default, (attr.name, knob.attr)
            if knob.ctype == "bool":
                continue
            for good in (knob.lo, knob.hi):
                setattr(attr, knob.attr, good)
            for bad in (knob.lo - 1, knob.hi + 1):
                with pytest.raises(ValueError, match=rf"must be {knob.lo}\.\.{knob.hi}\b"):
                    setattr(attr, knob.attr, bad)


def test_knob_table_imports_no_pydantic():
    """hwemu.fault_attr is plain data: it loads with pydantic unimportable and without
    hwemu/__init__.py, which imports the config."""
    package = Path(hwemu.__file__).parent
    code = textwrap.dedent(f"""
        import importlib, sys, types
        for name in ("pydantic", "pydantic_core", "yaml"):
            sys.modules[name] = None   # any import of it raises ImportError
        stub = types.ModuleType("hwemu")
        stub.__path__ = [{str(package)!r}]
        sys.modules["hwemu"] = stub
        table = importlib.import_module("hwemu.fault_attr")
        assert table.FAULT_ATTR_KNOBS
        print(" ".join(name for name in sys.modules if name.startswith("hwemu.")))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    assert "hwemu.fault_attr" in loaded
    assert not loaded & {"hwemu.config", "hwemu.machine", "hwemu.fault_inject"}


# ---------------------------------------------------------------- threads


def test_concurrent_tasks_get_exactly_times_failures(machine):
    attr = fault(machine, probability=100, times=1000, verbose=0).fail_mempool_alloc
    def hammer():
        failed = 0
        for _ in range(600):
            failed += should_fail(attr, 1)
            hwemu.cond_resched()   # the others may race us here
        return failed

    tasks = [machine.spawn(hammer) for _ in range(4)]
    counts = [t.join(timeout=30) for t in tasks]
    assert sum(counts) == 1000
    assert attr.times == 0


def test_concurrent_interval_and_space(machine):
    attr = fault(machine, probability=100, times=-1, interval=7,
                 space=400).fail_mempool_alloc
    def hammer():
        failed = 0
        for _ in range(1000):
            failed += should_fail_ex(attr, 1, FAULT_NOWARN)
            hwemu.cond_resched()
        return failed

    tasks = [machine.spawn(hammer) for _ in range(4)]
    total = sum(t.join(timeout=30) for t in tasks)
    # 399 calls consumed space 400 down to 1 (1 is not > 1); the other 3601 were
    # counted, and every 7th of them failed
    assert (attr.space, attr.count) == (1, 3601)
    assert total == 3601 // 7


def test_concurrent_knob_writes_are_validated(machine):
    fi = FaultInjection(machine)
    errors = []

    def writer(values):
        for v in values:
            try:
                fi.write(f"{DEBUGFS_ROOT}/failslab/probability", str(v))
            except ValueError:
                errors.append(v)
            hwemu.cond_resched()

    tasks = [machine.spawn(writer, range(i, 200, 4)) for i in range(4)]
    for t in tasks:
        t.join(timeout=30)
    assert sorted(errors) == list(range(101, 200))
    assert 0 <= fi.failslab.probability <= 100


# ---------------------------------------------------------------- config errors


def test_config_errors_have_lines(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "fault_injection:\n"
        "  failslab:\n"
        "    probabilty: 10\n"
        "    verbose: 3\n"
        "  fail_page_alloc:\n"
        "    min_order: 11\n"
        "    space: 4G\n"
        "  fail_mempool_alloc:\n"
        "    times: -2\n"
        "  fail_slab: {}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).splitlines() == [
        f"{path}:3: fault_injection.failslab.probabilty: unknown key 'probabilty'; "
        "did you mean 'probability'?",
        f"{path}:4: fault_injection.failslab.verbose: "
        "Input should be less than or equal to 2",
        f"{path}:6: fault_injection.fail_page_alloc.min_order: "
        "Input should be less than or equal to 10",
        f"{path}:7: fault_injection.fail_page_alloc.space: "
        "Input should be less than or equal to 2147483647",
        f"{path}:9: fault_injection.fail_mempool_alloc.times: "
        "Input should be greater than or equal to -1",
        f"{path}:10: fault_injection.fail_slab: unknown key 'fail_slab'; "
        "did you mean 'failslab'?",
    ]


def test_config_errors_for_overrides():
    with pytest.raises(ConfigError) as info:
        load_config(overrides={"fault_injection.fail_page_alloc.ignore_gfp_wiat": True,
                               "fault_injection.failslab.probability": 150})
    assert sorted(str(info.value).splitlines()) == [
        "--set: fault_injection.fail_page_alloc.ignore_gfp_wiat: unknown key "
        "'ignore_gfp_wiat'; did you mean 'ignore_gfp_wait'?",
        "--set: fault_injection.failslab.probability: "
        "Input should be less than or equal to 100",
    ]


def test_config_space_takes_sizes_and_defaults():
    cfg = load_config(overrides={"fault_injection.failslab.space": "64K"})
    fi = cfg.fault_injection
    assert fi.failslab.space == 64 << 10
    assert (fi.fail_page_alloc.min_order, fi.fail_page_alloc.ignore_gfp_highmem,
            fi.fail_mempool_alloc.verbose, fi.seed) == (1, True, 2, 0)
