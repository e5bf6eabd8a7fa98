"""hwemu: Linux memory hardware emulated in one process, for kernel mm code in Python.

Kernel functions and constants are re-exported here with the kernel's names and
argument order; they act on the machine the calling task belongs to (or that an
address argument belongs to). Pointers are ints; NULL is 0.
"""
from .access import load, memcpy, memset, read_bytes, store, write_bytes
from .bug import BUG, BUG_ON, WARN, WARN_ON, WARN_ON_ONCE, WARN_ONCE, panic
from .errors import *  # every exception the emulated kernel raises
from .config import Config, ConfigError, load_config
from .current import current
from .explore import ExploreFailure, explore, replay
from .gfp import *  # noqa: F401,F403  every __GFP_* / GFP_* flag, gfp_t, format_gfp, parse_gfp
from .highmem import (KM_MAX_IDX, kmap, kmap_atomic, kmap_flush_unused, kmap_local_page, kunmap,
                      kunmap_atomic, kunmap_local)
from .machine import Machine, boot
from .mmzone import (MAX_NR_ZONES, NODE_DATA, NUMA_NO_NODE, ZONE_DMA, ZONE_DMA32, ZONE_HIGHMEM,
                     ZONE_MOVABLE, ZONE_NAMES, ZONE_NORMAL, cpu_to_node, for_each_online_node,
                     node_distance, num_online_nodes)
from .page import (PageHighMem, __pa, __va, offset_in_page, page_address, page_ref_count,
                   page_struct, page_to_nid, page_to_pfn, page_to_phys, page_zone, page_zonenum,
                   pfn_to_page, pfn_valid, phys_to_virt, virt_addr_valid, virt_to_page, virt_to_pfn,
                   virt_to_phys)
from .page_alloc import (MAX_PAGE_ORDER, __alloc_pages, __free_page, __free_pages, __get_free_page,
                         __get_free_pages, alloc_page, alloc_pages, alloc_pages_node, free_page,
                         free_pages, get_page, get_zeroed_page, nr_free_pages, put_page)
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
                   reinit_completion, wait_for_completion, wait_for_completion_timeout,
                   wake_up, waitqueue_active, wq_has_sleeper)

__version__ = "0.1.0"
