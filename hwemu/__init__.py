"""hwemu: Linux memory hardware emulated in one process, for kernel mm code in Python.

Kernel functions and constants are re-exported here with the kernel's names and
argument order; they act on the machine the calling task belongs to (or that an
address argument belongs to). Pointers are ints; NULL is 0.

The package loads lazily (PEP 562): ``import hwemu`` reads only the exceptions, the GFP
flags and this table; the first use of any other name (``hwemu.kmalloc``, ``from hwemu
import boot``) imports the module that defines it, and ``hwemu.<module>`` imports that
module. So a process that only imports hwemu, such as every pytest run in an environment
where its plugin is installed, does not pay for the machine, numpy or the config models.
"""
import importlib
import sys
import types
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # what __getattr__ below loads, for type checkers and the layer test
    from .access import load, memcpy, memset, read_bytes, store, write_bytes
    from .bug import BUG, BUG_ON, WARN, WARN_ON, WARN_ON_ONCE, WARN_ONCE, panic
    from .config import Config, ConfigError, load_config
    from .current import current
    from .explore import ExploreFailure, explore, replay
    from .highmem import (KM_MAX_IDX, kmap, kmap_atomic, kmap_flush_unused, kmap_local_page, kunmap,
                          kunmap_atomic, kunmap_local)
    from .machine import Machine, boot
    from .mmzone import (MAX_NR_ZONES, NODE_DATA, NUMA_NO_NODE, ZONE_DMA, ZONE_DMA32, ZONE_HIGHMEM,
                         ZONE_MOVABLE, ZONE_NAMES, ZONE_NORMAL, cpu_to_node, for_each_online_node,
                         node_distance, num_online_nodes)
    from .page import (PageHighMem, __pa, __va, offset_in_page, page_address, page_ref_count,
                       page_struct, page_to_nid, page_to_pfn, page_to_phys, page_zone, page_zonenum,
                       pfn_to_page, pfn_valid, phys_to_virt, virt_addr_valid, virt_to_page,
                       virt_to_pfn, virt_to_phys)
    from .page_alloc import (MAX_PAGE_ORDER, __alloc_pages, __free_page, __free_pages,
                             __get_free_page, __get_free_pages, alloc_page, alloc_pages,
                             alloc_pages_node, free_page, free_pages, get_page, get_zeroed_page,
                             nr_free_pages, put_page)
    from .page_types import PAGE_MASK, PAGE_SHIFT, PAGE_SIZE
    from .sched import (MAX_SCHEDULE_TIMEOUT, TASK_INTERRUPTIBLE, TASK_KILLABLE, TASK_RUNNING,
                        TASK_UNINTERRUPTIBLE, cond_resched, in_atomic, in_hardirq, in_interrupt,
                        in_softirq, in_task, io_schedule_timeout, irqs_disabled, local_irq_disable,
                        local_irq_enable, local_irq_restore, local_irq_save, mdelay, might_sleep,
                        msleep, ndelay, numa_node_id, pagefault_disable, pagefault_disabled,
                        pagefault_enable, preempt_count, preempt_disable, preempt_enable,
                        run_in_interrupt, schedule, schedule_hrtimeout, schedule_timeout,
                        schedule_timeout_uninterruptible, set_current_state, smp_processor_id,
                        udelay, usleep_range, wake_up_process)
    from .slab import *  # noqa: F401,F403  kmem_cache_*, kmalloc family, SLAB_* flags
    from .spinlock import (spin_lock, spin_lock_init, spin_lock_irqsave, spin_unlock,
                           spin_unlock_irqrestore)
    from .timer import jiffies, ktime_get, msecs_to_jiffies, time_after, time_before
    from .util import *  # noqa: F401,F403  kvmalloc family, mem_dump_obj
    from .vmalloc import *  # noqa: F401,F403  vmalloc family, VM_* flags
    from .vmscan import add_anon_pages, add_to_page_cache, drop_caches, release_anon_pages
    from .wait import (DEFINE_WAIT, complete, complete_all, completion, completion_done,
                       finish_wait, init_completion, init_waitqueue_head, prepare_to_wait,
                       reinit_completion, wait_for_completion, wait_for_completion_timeout, wake_up,
                       waitqueue_active, wq_has_sleeper)

__version__ = "0.1.0"

# Every exported name but the exceptions and the GFP flags (bound below), by the module
# that defines it. For slab, util and vmalloc, whose names the package used to take with
# ``*``, this is their ``__all__``: tests/test_import_time.py checks the two agree.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "access": ("load", "memcpy", "memset", "read_bytes", "store", "write_bytes"),
    "bug": ("BUG", "BUG_ON", "panic", "WARN", "WARN_ON", "WARN_ON_ONCE", "WARN_ONCE"),
    "config": ("Config", "ConfigError", "load_config"),
    "current": ("current",),
    "explore": ("explore", "ExploreFailure", "replay"),
    "highmem": ("KM_MAX_IDX", "kmap", "kmap_atomic", "kmap_flush_unused", "kmap_local_page",
                "kunmap", "kunmap_atomic", "kunmap_local"),
    "machine": ("boot", "Machine"),
    "mmzone": ("cpu_to_node", "for_each_online_node", "MAX_NR_ZONES", "NODE_DATA", "node_distance",
               "num_online_nodes", "NUMA_NO_NODE", "ZONE_DMA", "ZONE_DMA32", "ZONE_HIGHMEM",
               "ZONE_MOVABLE", "ZONE_NAMES", "ZONE_NORMAL"),
    "page": ("offset_in_page", "__pa", "page_address", "page_ref_count", "page_struct",
             "page_to_nid", "page_to_pfn", "page_to_phys", "page_zone", "page_zonenum",
             "PageHighMem", "pfn_to_page", "pfn_valid", "phys_to_virt", "__va", "virt_addr_valid",
             "virt_to_page", "virt_to_pfn", "virt_to_phys"),
    "page_alloc": ("alloc_page", "__alloc_pages", "alloc_pages", "alloc_pages_node", "__free_page",
                   "free_page", "__free_pages", "free_pages", "__get_free_page", "__get_free_pages",
                   "get_page", "get_zeroed_page", "MAX_PAGE_ORDER", "nr_free_pages", "put_page"),
    "page_types": ("PAGE_MASK", "PAGE_SHIFT", "PAGE_SIZE"),
    "sched": ("cond_resched", "in_atomic", "in_hardirq", "in_interrupt", "in_softirq", "in_task",
              "io_schedule_timeout", "irqs_disabled", "local_irq_disable", "local_irq_enable",
              "local_irq_restore", "local_irq_save", "MAX_SCHEDULE_TIMEOUT", "mdelay",
              "might_sleep", "msleep", "ndelay", "numa_node_id", "pagefault_disable",
              "pagefault_disabled", "pagefault_enable", "preempt_count", "preempt_disable",
              "preempt_enable", "run_in_interrupt", "schedule", "schedule_hrtimeout",
              "schedule_timeout", "schedule_timeout_uninterruptible", "set_current_state",
              "smp_processor_id", "TASK_INTERRUPTIBLE", "TASK_KILLABLE", "TASK_RUNNING",
              "TASK_UNINTERRUPTIBLE", "udelay", "usleep_range", "wake_up_process"),
    "slab": ("ARCH_KMALLOC_MINALIGN", "ARCH_SLAB_MINALIGN", "kcalloc", "kcalloc_node",
             "kcalloc_node_noprof", "kcalloc_noprof", "kfree", "kfree_sensitive", "kmalloc",
             "kmalloc_array", "kmalloc_array_node", "kmalloc_array_node_noprof",
             "kmalloc_array_noprof", "KMALLOC_MAX_CACHE_SIZE", "KMALLOC_MAX_ORDER",
             "KMALLOC_MAX_SIZE", "KMALLOC_MIN_SIZE", "kmalloc_node", "kmalloc_node_noprof",
             "kmalloc_noprof", "KMALLOC_SHIFT_HIGH", "KMALLOC_SHIFT_LOW", "KMALLOC_SHIFT_MAX",
             "kmalloc_size_roundup", "kmem_cache_alloc", "kmem_cache_alloc_node",
             "kmem_cache_alloc_node_noprof", "kmem_cache_alloc_noprof", "kmem_cache_create",
             "kmem_cache_destroy", "kmem_cache_free", "kmem_cache_shrink", "kmem_cache_size",
             "kmem_cache_zalloc", "kmem_cache_zalloc_noprof", "KmemCache", "krealloc",
             "krealloc_node_align_noprof", "krealloc_noprof", "ksize", "kzalloc", "kzalloc_node",
             "kzalloc_noprof", "PGTY_large_kmalloc", "PGTY_slab", "Slab", "SLAB_ACCOUNT",
             "SLAB_CACHE_DMA", "SLAB_CACHE_DMA32", "SLAB_CONSISTENCY_CHECKS", "SLAB_FAILSLAB",
             "SLAB_HWCACHE_ALIGN", "SLAB_KASAN", "SLAB_KMALLOC", "SLAB_NO_MERGE", "SLAB_NO_OBJ_EXT",
             "SLAB_NO_USER_FLAGS", "SLAB_NOLEAKTRACE", "SLAB_PANIC", "SLAB_POISON",
             "SLAB_RECLAIM_ACCOUNT", "SLAB_RED_ZONE", "SLAB_STORE_USER", "SLAB_TEMPORARY",
             "SLAB_TRACE", "SLAB_TYPESAFE_BY_RCU", "struct_kmem_cache", "virt_to_cache",
             "ZERO_OR_NULL_PTR", "ZERO_SIZE_PTR"),
    "spinlock": ("spin_lock", "spin_lock_init", "spin_lock_irqsave", "spin_unlock",
                 "spin_unlock_irqrestore"),
    "timer": ("jiffies", "ktime_get", "msecs_to_jiffies", "time_after", "time_before"),
    "util": ("kmalloc_gfp_adjust", "kvcalloc", "kvcalloc_noprof", "kvfree", "kvfree_sensitive",
             "kvmalloc", "kvmalloc_array", "kvmalloc_array_noprof", "kvmalloc_node",
             "kvmalloc_node_noprof", "kvmalloc_noprof", "kvrealloc", "kvrealloc_noprof", "kvzalloc",
             "kvzalloc_node", "kvzalloc_node_noprof", "kvzalloc_noprof", "mem_dump_obj"),
    "vmalloc": ("find_vm_area", "free_vm_area", "get_vm_area", "get_vm_area_size",
                "GFP_VMALLOC_SUPPORTED", "is_vmalloc_addr", "is_vmalloc_or_module_addr",
                "PAGE_KERNEL", "remove_vm_area", "vfree", "vfree_atomic", "VM_ALLOC",
                "VM_ALLOW_HUGE_VMAP", "VM_DEFER_KMEMLEAK", "VM_DMA_COHERENT",
                "VM_FLUSH_RESET_PERMS", "VM_IOREMAP", "VM_KASAN", "VM_MAP", "VM_MAP_PUT_PAGES",
                "VM_NO_GUARD", "VM_SPARSE", "vm_struct", "VM_UNINITIALIZED", "VM_USERMAP",
                "Vmalloc", "__vmalloc", "vmalloc", "vmalloc_32", "vmalloc_32_noprof",
                "vmalloc_huge", "vmalloc_huge_node", "vmalloc_huge_node_noprof",
                "vmalloc_huge_noprof", "__vmalloc_node", "vmalloc_node", "__vmalloc_node_noprof",
                "vmalloc_node_noprof", "__vmalloc_node_range", "__vmalloc_node_range_noprof",
                "__vmalloc_noprof", "vmalloc_noprof", "vmalloc_nr_pages", "vmalloc_to_page",
                "vmalloc_to_pfn", "vmap", "vrealloc", "vrealloc_noprof", "vunmap", "vzalloc",
                "vzalloc_node", "vzalloc_node_noprof", "vzalloc_noprof"),
    "vmscan": ("add_anon_pages", "add_to_page_cache", "drop_caches", "release_anon_pages"),
    "wait": ("complete", "complete_all", "completion", "completion_done", "DEFINE_WAIT",
             "finish_wait", "init_completion", "init_waitqueue_head", "prepare_to_wait",
             "reinit_completion", "wait_for_completion", "wait_for_completion_timeout",
             "waitqueue_active", "wake_up", "wq_has_sleeper"),
}
_ORIGIN = {name: module for module, names in _EXPORTS.items() for name in names}


class _Package(types.ModuleType):
    """The package's module type. Three exported functions are named like their modules
    (``current``, ``explore``, ``vmalloc``): importing ``hwemu.vmalloc`` makes the module
    an attribute of the package, which would hide the function ``hwemu.vmalloc``; the
    function is bound instead, as the package's imports of these names used to do."""

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, types.ModuleType) and _ORIGIN.get(name) == name \
                and value.__name__ == f"{__name__}.{name}":
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

# Bound now: cheap, and what they export is computed (gfp's names come from its table).
from .errors import *  # noqa: E402  every exception the emulated kernel raises
from .gfp import *  # noqa: E402  every __GFP_* / GFP_* flag, gfp_t, format_gfp, parse_gfp

# Modules reachable as attributes without importing them (``hwemu.kasan.expect_report``).
_SUBMODULES = frozenset((
    "_speedups", "access", "alloc_tag", "bug", "config", "errors", "fault_attr", "fault_inject",
    "gfp", "highmem", "jump_label", "kasan", "machine", "mmzone", "oom_kill", "page", "page_alloc",
    "page_types", "physmem", "printk", "procfs", "runs", "sched", "slab", "spinlock", "stackdepot",
    "strategy", "timer", "util", "vmem", "vmscan", "vmstat", "wait"
))

# ``from hwemu import *``: every exported name without a leading underscore, and the
# modules that importing the whole package used to bind.
__all__ = sorted(name for name in {
    *(name for module in ("errors", "gfp")
      for name in importlib.import_module("." + module, __name__).__all__),
    *_ORIGIN, *_SUBMODULES - {"runs"},
} if not name.startswith("_"))


def __dir__() -> list[str]:
    return sorted({*globals(), *_ORIGIN, *_SUBMODULES})


if not TYPE_CHECKING:   # a type checker sees the imports above, and no catch-all
    def __getattr__(name: str):
        """Import the module of ``name`` on first use; keep the value as a global."""
        module = _ORIGIN.get(name)
        if module is not None:
            value = getattr(importlib.import_module("." + module, __name__), name)
        elif name in _SUBMODULES:
            try:
                value = importlib.import_module("." + name, __name__)
            except ModuleNotFoundError as exc:   # _speedups, when it is not built
                if exc.name != f"{__name__}.{name}":
                    raise
                raise AttributeError(f"module {__name__!r} has no attribute {name!r}") \
                    from None
        else:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        globals()[name] = value
        return value
