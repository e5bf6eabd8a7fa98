"""A deliberately buggy driver for configs/kasan-uaf.yaml (a `custom` workload).

It takes requests from a mempool and gives them back, but after ``bug_at`` requests
it writes to a request it has already freed: a use-after-free that KASAN reports.
"""
import mempool
from hwemu import GFP_KERNEL, store


def use_after_free(run):
    """``run.pools``, ``run.args``, ``run.count()``: see hwemu.runs.workloads.CustomTask."""
    pool = run.pools["requests"]
    for i in range(run.args["requests"]):
        if run.stopping():
            return
        rq = mempool.mempool_alloc(pool, GFP_KERNEL)
        store(rq, 8, i)                  # fill in the request
        mempool.mempool_free(rq, pool)   # complete it
        if i == run.args["bug_at"]:
            store(rq + 8, 8, 0xdead)     # BUG: the request was freed a line ago
        run.count("requests")
