"""Issue 14, item 8: what merely having hwemu installed costs.

``import hwemu`` used to import the whole machine (numpy, greenlet, the pydantic config
models, YAML): about 1 s, paid by every pytest run in an environment where hwemu's
plugin is installed, and by ``hwemu --help``. The package now loads lazily (PEP 562,
hwemu/__init__.py); the plugin and the command import the machine only when a test or a
command uses one.

The deterministic guards are the module lists: ``import hwemu``, the plugin and
``hwemu --help`` must not import the heavy dependencies. The two timing tests are the
issue's acceptance line, a measured comparison: each side runs in fresh interpreters,
interleaved with the other, and the fastest run of each is compared (the minimum is
the run least disturbed by the host's load); a round that misses is measured again,
so only a miss in every round fails. The plugin's cost is compared in CPU time (see
its test).
"""
import importlib
import importlib.util
import os
import subprocess
import sys
import time
import types

import pytest

import hwemu

# Every name ``import hwemu`` exported before it loaded lazily (captured from the eager
# package, commit e1ca4ba): each stays importable with ``from hwemu import NAME``.
EXPORTED = """
    ARCH_KMALLOC_MINALIGN ARCH_SLAB_MINALIGN AddressError BUG BUG_ON Config ConfigError
    DEFINE_WAIT Deadlock ExploreFailure GFP_ATOMIC GFP_DMA GFP_DMA32 GFP_HIGHUSER
    GFP_HIGHUSER_MOVABLE GFP_KERNEL GFP_KERNEL_ACCOUNT GFP_NOFS GFP_NOIO GFP_NOWAIT
    GFP_SLAB_BUG_MASK GFP_TABLE GFP_TRANSHUGE GFP_TRANSHUGE_LIGHT GFP_USER
    GFP_VMALLOC_SUPPORTED GFP_ZONEMASK GFP_ZONES_SHIFT GFP_ZONE_BAD GFP_ZONE_TABLE
    KMALLOC_MAX_CACHE_SIZE KMALLOC_MAX_ORDER KMALLOC_MAX_SIZE KMALLOC_MIN_SIZE
    KMALLOC_SHIFT_HIGH KMALLOC_SHIFT_LOW KMALLOC_SHIFT_MAX KM_MAX_IDX KernelBug KernelError
    KernelPanic Killed KmemCache MAX_NR_ZONES MAX_PAGE_ORDER MAX_SCHEDULE_TIMEOUT Machine
    MachineDown MachineError NODE_DATA NUMA_NO_NODE Oops PAGE_KERNEL PAGE_MASK PAGE_SHIFT
    PAGE_SIZE PGTY_large_kmalloc PGTY_slab PageHighMem SLAB_ACCOUNT SLAB_CACHE_DMA
    SLAB_CACHE_DMA32 SLAB_CONSISTENCY_CHECKS SLAB_FAILSLAB SLAB_HWCACHE_ALIGN SLAB_KASAN
    SLAB_KMALLOC SLAB_NOLEAKTRACE SLAB_NO_MERGE SLAB_NO_OBJ_EXT SLAB_NO_USER_FLAGS
    SLAB_PANIC SLAB_POISON SLAB_RECLAIM_ACCOUNT SLAB_RED_ZONE SLAB_STORE_USER SLAB_TEMPORARY
    SLAB_TRACE SLAB_TYPESAFE_BY_RCU Slab TASK_INTERRUPTIBLE TASK_KILLABLE TASK_RUNNING
    TASK_UNINTERRUPTIBLE VM_ALLOC VM_ALLOW_HUGE_VMAP VM_DEFER_KMEMLEAK VM_DMA_COHERENT
    VM_FLUSH_RESET_PERMS VM_IOREMAP VM_KASAN VM_MAP VM_MAP_PUT_PAGES VM_NO_GUARD VM_SPARSE
    VM_UNINITIALIZED VM_USERMAP Vmalloc WARN WARN_ON WARN_ONCE WARN_ON_ONCE ZERO_OR_NULL_PTR
    ZERO_SIZE_PTR ZONE_DMA ZONE_DMA32 ZONE_HIGHMEM ZONE_MOVABLE ZONE_NAMES ZONE_NORMAL
    __GFP_ACCOUNT __GFP_BITS_MASK __GFP_BITS_SHIFT __GFP_COMP __GFP_DIRECT_RECLAIM __GFP_DMA
    __GFP_DMA32 __GFP_FS __GFP_HARDWALL __GFP_HIGH __GFP_HIGHMEM __GFP_IO
    __GFP_KSWAPD_RECLAIM __GFP_MEMALLOC __GFP_MOVABLE __GFP_NOFAIL __GFP_NOLOCKDEP
    __GFP_NOMEMALLOC __GFP_NORETRY __GFP_NOWARN __GFP_NO_OBJ_EXT __GFP_RECLAIM
    __GFP_RECLAIMABLE __GFP_RETRY_MAYFAIL __GFP_SKIP_KASAN __GFP_SKIP_ZERO __GFP_THISNODE
    __GFP_WRITE __GFP_ZERO __GFP_ZEROTAGS __alloc_pages __free_page __free_pages
    __get_free_page __get_free_pages __pa __va __vmalloc __vmalloc_node
    __vmalloc_node_noprof __vmalloc_node_range __vmalloc_node_range_noprof __vmalloc_noprof
    add_anon_pages add_to_page_cache alloc_page alloc_pages alloc_pages_node boot complete
    complete_all completion completion_done cond_resched cpu_to_node current drop_caches
    explore find_vm_area finish_wait for_each_online_node format_flags format_gfp free_page
    free_pages free_vm_area get_page get_vm_area get_vm_area_size get_zeroed_page gfp_t
    gfp_zone gfpflag_names gfpflags_allow_blocking in_atomic in_hardirq in_interrupt
    in_softirq in_task init_completion init_waitqueue_head io_schedule_timeout irqs_disabled
    is_vmalloc_addr is_vmalloc_or_module_addr jiffies kcalloc kcalloc_node
    kcalloc_node_noprof kcalloc_noprof kfree kfree_sensitive kmalloc kmalloc_array
    kmalloc_array_node kmalloc_array_node_noprof kmalloc_array_noprof kmalloc_gfp_adjust
    kmalloc_node kmalloc_node_noprof kmalloc_noprof kmalloc_size_roundup kmap kmap_atomic
    kmap_flush_unused kmap_local_page kmem_cache_alloc kmem_cache_alloc_node
    kmem_cache_alloc_node_noprof kmem_cache_alloc_noprof kmem_cache_create
    kmem_cache_destroy kmem_cache_free kmem_cache_shrink kmem_cache_size kmem_cache_zalloc
    kmem_cache_zalloc_noprof krealloc krealloc_node_align_noprof krealloc_noprof ksize
    ktime_get kunmap kunmap_atomic kunmap_local kvcalloc kvcalloc_noprof kvfree
    kvfree_sensitive kvmalloc kvmalloc_array kvmalloc_array_noprof kvmalloc_node
    kvmalloc_node_noprof kvmalloc_noprof kvrealloc kvrealloc_noprof kvzalloc kvzalloc_node
    kvzalloc_node_noprof kvzalloc_noprof kzalloc kzalloc_node kzalloc_noprof load
    load_config local_irq_disable local_irq_enable local_irq_restore local_irq_save mdelay
    mem_dump_obj memcpy memset might_sleep msecs_to_jiffies msleep ndelay node_distance
    nr_free_pages num_online_nodes numa_node_id offset_in_page page_address page_ref_count
    page_struct page_to_nid page_to_pfn page_to_phys page_zone page_zonenum
    pagefault_disable pagefault_disabled pagefault_enable panic parse_gfp pfn_to_page
    pfn_valid phys_to_virt preempt_count preempt_disable preempt_enable prepare_to_wait
    put_page read_bytes reinit_completion release_anon_pages remove_vm_area replay
    run_in_interrupt schedule schedule_hrtimeout schedule_timeout
    schedule_timeout_uninterruptible set_current_state smp_processor_id spin_lock
    spin_lock_init spin_lock_irqsave spin_unlock spin_unlock_irqrestore store
    struct_kmem_cache time_after time_before udelay usleep_range vfree vfree_atomic
    virt_addr_valid virt_to_cache virt_to_page virt_to_pfn virt_to_phys vm_struct vmalloc
    vmalloc_32 vmalloc_32_noprof vmalloc_huge vmalloc_huge_node vmalloc_huge_node_noprof
    vmalloc_huge_noprof vmalloc_node vmalloc_node_noprof vmalloc_noprof vmalloc_nr_pages
    vmalloc_to_page vmalloc_to_pfn vmap vrealloc vrealloc_noprof vunmap vzalloc vzalloc_node
    vzalloc_node_noprof vzalloc_noprof wait_for_completion wait_for_completion_timeout
    waitqueue_active wake_up wake_up_process wq_has_sleeper write_bytes
""".split()

# The modules that were attributes of the package after ``import hwemu``.
MODULES = """
    _speedups access alloc_tag bug config errors fault_attr fault_inject gfp highmem
    jump_label kasan machine mmzone oom_kill page page_alloc page_types physmem printk
    procfs sched slab spinlock stackdepot strategy timer util vmem vmscan vmstat wait
""".split()

# What ``import hwemu`` must not import: the machine and what only it needs.
HEAVY = ("numpy", "pydantic", "pydantic_core", "yaml", "rich", "matplotlib", "greenlet",
         "hwemu.config", "hwemu.machine", "hwemu.vmem", "hwemu.runs")


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter has after running ``code``."""
    r = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(*sys.modules)"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return set(r.stdout.split())


def heavy(modules: set[str]) -> set[str]:
    return {m for m in modules for h in HEAVY if m == h or m.startswith(h + ".")}


# ---------------------------------------------------------------- the public API


def test_every_name_exported_before_is_still_exported():
    missing = [n for n in EXPORTED if not hasattr(hwemu, n)]
    assert not missing
    ns: dict = {}
    for name in EXPORTED:
        exec(f"from hwemu import {name}", ns)
        assert ns[name] is getattr(hwemu, name)
        assert not isinstance(ns[name], types.ModuleType), name
    assert set(EXPORTED) | set(MODULES) <= set(dir(hwemu))


def test_the_modules_are_attributes_of_the_package():
    for name in MODULES:
        if name == "_speedups" and importlib.util.find_spec("hwemu._speedups") is None:
            continue   # the optional C extension, not built
        assert isinstance(getattr(hwemu, name), types.ModuleType), name
    assert hwemu.runs.Run   # issue 14 item 1: hwemu.runs after ``import hwemu``


def test_star_import_binds_what_it_bound():
    ns: dict = {}
    exec("from hwemu import *", ns)
    del ns["__builtins__"]
    public = {n for n in EXPORTED if not n.startswith("_")}
    assert set(ns) == public | set(MODULES) - {"_speedups"}


def test_the_table_has_every_name_of_the_modules_it_star_imported():
    """hwemu used to take slab's, util's and vmalloc's names with ``*``; its table of
    lazy names must follow their ``__all__``."""
    for module in ("slab", "util", "vmalloc", "errors", "gfp"):
        names = importlib.import_module(f"hwemu.{module}").__all__
        assert [n for n in names if not hasattr(hwemu, n)] == [], module


def test_functions_named_like_their_modules_stay_functions():
    """``current``, ``explore`` and ``vmalloc`` are functions and modules; importing the
    module, before or after the name was used, leaves the function on the package."""
    code = ("import hwemu.current, hwemu.explore, hwemu.vmalloc, hwemu\n"
            "from hwemu.vmalloc import Vmalloc\n"
            "print(*(type(getattr(hwemu, n)).__name__ for n in "
            "('current', 'explore', 'vmalloc')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.stdout.split() == ["function"] * 3, r.stderr
    assert all(callable(f) for f in (hwemu.current, hwemu.explore, hwemu.vmalloc))


def test_an_unknown_name_is_an_attribute_error():
    assert not hasattr(hwemu, "kmalloc_typo")
    try:
        from hwemu import kmalloc_typo  # noqa: F401
    except ImportError as exc:
        assert "kmalloc_typo" in str(exc)
    else:
        raise AssertionError("imported a name hwemu does not have")


# ---------------------------------------------------------------- what loads


def test_import_hwemu_loads_no_machine():
    assert heavy(loaded_after("import hwemu")) == set()


def test_the_plugin_loads_no_machine():
    assert heavy(loaded_after("import hwemu.pytest_plugin")) == set()


def test_hwemu_help_loads_no_machine():
    code = ("import hwemu.cli\n"
            "for argv in (['--help'], ['run', '--help'], ['proc', '--help']):\n"
            "    try:\n"
            "        hwemu.cli.main(argv)\n"
            "    except SystemExit:\n"
            "        pass")
    assert heavy(loaded_after(code)) == set()


def test_a_name_loads_its_module_on_first_use():
    modules = loaded_after("from hwemu import kmalloc")
    assert {"hwemu.slab", "numpy"} <= modules
    assert "hwemu.runs" not in modules


def test_the_kernel_loads_no_config_models():
    """The kernel's modules (all but boot, hwemu.machine) read hwemu.config.limits, not
    the pydantic models: those load with the first config."""
    modules = loaded_after("import hwemu.kasan, hwemu.procfs, hwemu.vmscan, mempool")
    assert not {m.split(".")[0] for m in modules} & {"pydantic", "pydantic_core", "yaml"}
    assert {m for m in modules if m.startswith("hwemu.config.")} == {"hwemu.config.limits"}
    modules = loaded_after("import hwemu.config; hwemu.config.Config")
    assert {"pydantic", "hwemu.config.schema"} <= modules


# ---------------------------------------------------------------- the acceptance timings

ROUNDS = 3   # a round that misses is measured again; a real slowdown misses them all
RUNS = 5     # interleaved runs of each side per round; the fastest counts


def run(argv: list[str], **kwargs) -> tuple[float, float]:
    """``(wall, cpu)`` seconds of one run of ``argv``: elapsed, and user + system time
    of the process (all its threads)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            **kwargs)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    wall = time.perf_counter() - start
    assert proc.returncode == 0, f"{argv}:\n{out.decode(errors='replace')}"
    return wall, usage.ru_utime + usage.ru_stime


def fastest(commands: dict[str, list[str]], **kwargs) -> dict[str, tuple[float, float]]:
    """The fastest ``(wall, cpu)`` of each command over :data:`RUNS` interleaved runs
    (each minimum taken on its own)."""
    best = dict.fromkeys(commands, (float("inf"), float("inf")))
    for _ in range(RUNS):
        for name, argv in commands.items():
            wall, cpu = run(argv, **kwargs)
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    return best


def test_import_hwemu_takes_at_most_one_and_a_half_import_numpy():
    """Wall time, as the acceptance line reads; the margin is wide (about 0.4x here)."""
    commands = {"hwemu": [sys.executable, "-c", "import hwemu"],
                "numpy": [sys.executable, "-c", "import numpy"]}
    rounds = []
    for _ in range(ROUNDS):
        t = fastest(commands)
        rounds.append(f"hwemu {t['hwemu'][0]:.3f}s, numpy {t['numpy'][0]:.3f}s")
        if t["hwemu"][0] <= 1.5 * t["numpy"][0]:
            return
    pytest.fail("python -c 'import hwemu' took more than 1.5x python -c 'import numpy' "
                "in every round (fastest of each): " + "; ".join(rounds))


def test_the_plugin_adds_under_200ms_to_a_run_that_uses_no_hwemu(tmp_path):
    """What the plugin adds is work: imports and hooks. It is compared as the CPU time
    of the runs, which the host's load leaves alone; their wall time does not: at a
    load of 11 on this 2-core host, the fastest of 5 runs of the same command differed
    by 0.2 s between sides, the whole allowance, while CPU time stayed within 0.02 s
    (the plugin's share: about 0.01 s of 0.16 s)."""
    (tmp_path / "test_one.py").write_text("def test_one():\n    assert True\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    # The other installed plugins are left out of both sides: they cost the same to
    # each, and hypothesis's alone would make every run three times as long.
    pytest_ = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "-p", "no:hypothesispytest", "-p", "no:xdist", "-p", "no:xdist.looponfail"]
    commands = {"with": pytest_ + ["test_one.py"],
                "without": pytest_ + ["-p", "no:hwemu", "test_one.py"]}
    markers = {name: subprocess.run(argv + ["--markers"], cwd=tmp_path, env=env,
                                    capture_output=True, text=True, timeout=300).stdout
               for name, argv in commands.items()}
    assert "hwemu_config" in markers["with"] and "hwemu_config" not in markers["without"]
    rounds = []
    for _ in range(ROUNDS):
        t = fastest(commands, cwd=tmp_path, env=env)
        rounds.append(", ".join(f"{side} {t[side][1]:.3f}s CPU ({t[side][0]:.3f}s wall)"
                                for side in t))
        if t["with"][1] - t["without"][1] < 0.2:
            return
    pytest.fail("the hwemu plugin added 0.2 s or more to a one-test pytest run in every "
                "round (fastest of each): " + "; ".join(rounds))
