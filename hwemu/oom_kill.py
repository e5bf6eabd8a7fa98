"""Emulation of mm/oom_kill.c: choosing and killing a victim when reclaim cannot help.

The badness of a task is its anonymous RSS (vmscan.py's ``add_anon_pages``; page
cache and kernel allocations belong to no task). The victim gets a fatal signal
(``task.oom_victim``: its next ``add_anon_pages`` raises :class:`~hwemu.bug.Killed`)
and its memory is reaped at once, as the oom_reaper does. With no task to kill, the
kernel panics, and so does the emulator. Not emulated: oom_score_adj,
memory cgroups, cpusets, sysctl panic_on_oom.
"""
from __future__ import annotations

import threading

from . import bug, sched
from .current import current
from .gfp import format_gfp, gfp_t
from .printk import KERN_ERR, KERN_INFO, KERN_WARNING


class OOMKiller:
    """``out_of_memory()`` for one machine (``machine.oom``)."""

    def __init__(self, machine):
        self.machine = machine
        self.oom_lock = threading.Lock()

    def out_of_memory(self, gfp: int, order: int, nodemask) -> bool:
        """Kill the task with the largest RSS; True if memory was (or will be) freed."""
        if not gfp & gfp_t.FS:
            return True  # the OOM killer does not compensate for IO-less reclaim
        with self.oom_lock:
            machine, task = self.machine, current()
            vmscan = machine.vmscan
            tasks = [t for t in list(machine.sched.tasks.values()) if not t.oom_victim]
            victim = max(tasks, key=lambda t: vmscan.rss(t.pid), default=None)
            if victim is not None and vmscan.rss(victim.pid) == 0:
                victim = None
            self.dump_header(task, gfp, order, nodemask)
            if victim is None:
                machine.log.printk("Out of memory and no killable processes...",
                                   KERN_WARNING)
                raise bug.panic_report(machine, task, "System is deadlocked on memory")
            self.kill(victim, nodemask)
            return True

    def dump_header(self, task, gfp: int, order: int, nodemask) -> None:
        machine = self.machine
        machine.log.printk(f"{task.comm} invoked oom-killer: gfp_mask={format_gfp(gfp)}, "
                           f"order={order}, oom_score_adj=0", KERN_WARNING)
        bug.dump_stack(machine, task, bug.caller(4), KERN_WARNING)
        machine.log.printk(machine.page_alloc.show_mem(), KERN_WARNING)
        rows = ["Tasks state (memory values in pages):",
                "[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem "
                "pgtables_bytes swapents oom_score_adj name"]
        for t in sorted(machine.sched.tasks.values(), key=lambda t: t.pid):
            rss = machine.vmscan.rss(t.pid)
            rows.append(f"[{t.pid:7d}] {0:5d} {t.pid:5d} {rss:8d} {rss:8d} {rss:8d} "
                        f"{0:8d} {0:9d} {0:14d} {0:8d} {0:13d} {t.comm}")
        machine.log.printk("\n".join(rows), KERN_INFO)

    def kill(self, victim, nodemask) -> None:
        """``oom_kill_process()`` + the oom_reaper: signal the victim, free its memory."""
        machine = self.machine
        nodes = len(machine.nodes)
        mems = "0" if nodes == 1 else f"0-{nodes - 1}"
        kb = machine.vmscan.rss(victim.pid) * 4
        mask = "(null)" if nodemask is None else ",".join(map(str, sorted(nodemask)))
        machine.log.printk(
            f"oom-kill:constraint=CONSTRAINT_NONE,nodemask={mask},cpuset=/,"
            f"mems_allowed={mems},global_oom,task_memcg=/,task={victim.comm},"
            f"pid={victim.pid},uid=0", KERN_INFO)
        machine.log.printk(
            f"Out of memory: Killed process {victim.pid} ({victim.comm}) total-vm:{kb}kB, "
            f"anon-rss:{kb}kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:0kB "
            "oom_score_adj:0", KERN_ERR)
        victim.oom_victim = True
        machine.vmscan.release_anon_pages(victim)
        sched.try_to_wake_up(victim)  # a fatal signal wakes a sleeping task
        machine.vmstat.mod("oom_kill", 1)
        machine.log.printk(f"oom_reaper: reaped process {victim.pid} ({victim.comm}), now "
                           "anon-rss:0kB, file-rss:0kB, shmem-rss:0kB", KERN_INFO)
