"""Pressure that reaches a pool (issue 14, item 6): bio bursts (``run.bio.interval``),
the default demo's reserve use and waits, and the shipped GFP_NOIO config."""
import pytest
from conftest import CONFIGS
from helpers import reserve_only

from hwemu.config import load_config
from hwemu.runs import Run


def bio_run(**bio):
    """A small machine whose pool's allocator always fails (the reserve carries it),
    with 2 submitters of 4 requests, each completing 1 ms after its submission."""
    return load_config({
        "machine": {"name": "bursts", "cpus": 4, "hz": 1000, "nodes": [{"mem": "64M"}]},
        "fault_injection": reserve_only(),
        "run": {"duration": "50ms",
                "pools": [{"name": "rq", "type": "kmalloc", "size": 64, "min_nr": 8}],
                "bio": {"pool": "rq", "submitters": 2, "queue_depth": 4,
                        "latency": {"min": "1ms", "mean": "1ms"}, **bio}}})


def test_bio_interval_submits_a_full_queue_at_each_multiple_of_it():
    """Bursts at 0, 10, 20, 30 and 40 ms, each of queue_depth requests per submitter,
    all of them done 1 ms later; a closed loop submits again at each completion."""
    result = Run(bio_run(interval="10ms")).execute()
    assert result["workloads"]["bio"]["submitted"] == 2 * 4 * 5
    assert result["workloads"]["bio"]["completed"] == 2 * 4 * 5
    pool = result["pools"]["rq"]
    assert pool["alloc_reserve"] == 40 and pool["waits"] == 0   # 8 at once: min_nr
    closed = Run(bio_run()).execute()
    assert closed["workloads"]["bio"]["completed"] > 300   # one per submitter per 1 ms × 4


def test_submitters_sleeping_until_the_next_burst_stop_with_the_run():
    """The stop wakes a submitter that sleeps until its next burst (1 s away): the run
    ends at its duration, with every task stopped."""
    result = Run(bio_run(interval="1s")).execute()
    assert result["task_errors"] == [] and result["emulated_seconds"] == 0.05
    assert result["workloads"]["bio"]["completed"] == 2 * 4


def test_a_burst_bigger_than_the_reserve_waits_for_completions():
    """12 requests at once from a reserve of 8: the submitters wait in mempool_alloc()
    until the first completions (1 ms later) refill it, never get NULL, and go on
    until their queues are full (refilling what completed meanwhile)."""
    result = Run(bio_run(interval="10ms", queue_depth=6)).execute()
    pool = result["pools"]["rq"]
    bio = result["workloads"]["bio"]
    assert bio["completed"] == bio["submitted"] >= 2 * 6 * 5
    assert pool["waits"] > 0 and pool["alloc_null"] == 0 and pool["lowest_fill"] == 0
    assert 0 < pool["max_wait_ns"] <= 1_000_000 + 100_000


@pytest.mark.parametrize("name, duration", [("default.yaml", "3s"),
                                            ("noio-pressure.yaml", None)])
def test_the_demos_show_the_reserve_used_emptied_and_waited_for(name, duration):
    """The default demo (`make run`) and the GFP_NOIO template: under dirty page cache
    the reserve is used and runs dry, tasks wait (max and p99 above 0), and GFP_NOIO
    still never gets NULL; every expectation of the config holds."""
    overrides = {"run.duration": duration} if duration else {}
    result = Run(load_config(CONFIGS / name, overrides=overrides)).execute()
    (pool,) = result["pools"].values()
    assert pool["alloc_reserve"] > 0 and pool["lowest_fill"] == 0
    assert pool["waits"] > 0 and pool["max_wait_ns"] > 0 and pool["p99_wait_ns"] > 0
    assert pool["alloc_null"] == 0
    assert result["config"]["run"]["bio"]["gfp"] == "GFP_NOIO"
    # Direct reclaim ran for the pool's GFP_NOIO retries, and freed nothing.
    assert sum(v for k, v in result["vm"].items() if k.startswith("allocstall")) > 0
    assert result["vm"].get("pgsteal_direct", 0) == 0
    failed = [e for e in result["expectations"] if not e["ok"]]
    assert failed == []

