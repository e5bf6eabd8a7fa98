/* SPDX-License-Identifier: GPL-2.0 */
/* Generated from hwemu's Python (each section names its module) by hwemu.kbuild.headers: do not edit. */
#ifndef _HWEMU_FACTS_H
#define _HWEMU_FACTS_H

/* include/linux/gfp_types.h (hwemu/gfp.py) */
#define GFP_TRANSHUGE ((gfp_t)0x1c24cau)
#define GFP_TRANSHUGE_LIGHT ((gfp_t)0x1c20cau)
#define GFP_HIGHUSER_MOVABLE ((gfp_t)0x100ccau)
#define GFP_HIGHUSER ((gfp_t)0x100cc2u)
#define GFP_USER ((gfp_t)0x100cc0u)
#define GFP_KERNEL_ACCOUNT ((gfp_t)0x400cc0u)
#define GFP_KERNEL ((gfp_t)0xcc0u)
#define GFP_NOFS ((gfp_t)0xc40u)
#define GFP_ATOMIC ((gfp_t)0x820u)
#define GFP_NOIO ((gfp_t)0xc00u)
#define GFP_NOWAIT ((gfp_t)0x2800u)
#define GFP_DMA ((gfp_t)0x1u)
#define GFP_DMA32 ((gfp_t)0x4u)
#define __GFP_RECLAIM ((gfp_t)0xc00u)
#define __GFP_DMA ((gfp_t)0x1u)
#define __GFP_HIGHMEM ((gfp_t)0x2u)
#define __GFP_DMA32 ((gfp_t)0x4u)
#define __GFP_MOVABLE ((gfp_t)0x8u)
#define __GFP_RECLAIMABLE ((gfp_t)0x10u)
#define __GFP_HIGH ((gfp_t)0x20u)
#define __GFP_IO ((gfp_t)0x40u)
#define __GFP_FS ((gfp_t)0x80u)
#define __GFP_ZERO ((gfp_t)0x100u)
#define __GFP_DIRECT_RECLAIM ((gfp_t)0x400u)
#define __GFP_KSWAPD_RECLAIM ((gfp_t)0x800u)
#define __GFP_WRITE ((gfp_t)0x1000u)
#define __GFP_NOWARN ((gfp_t)0x2000u)
#define __GFP_RETRY_MAYFAIL ((gfp_t)0x4000u)
#define __GFP_NOFAIL ((gfp_t)0x8000u)
#define __GFP_NORETRY ((gfp_t)0x10000u)
#define __GFP_MEMALLOC ((gfp_t)0x20000u)
#define __GFP_COMP ((gfp_t)0x40000u)
#define __GFP_NOMEMALLOC ((gfp_t)0x80000u)
#define __GFP_HARDWALL ((gfp_t)0x100000u)
#define __GFP_THISNODE ((gfp_t)0x200000u)
#define __GFP_ACCOUNT ((gfp_t)0x400000u)
#define __GFP_ZEROTAGS ((gfp_t)0x800000u)
#define __GFP_NO_OBJ_EXT ((gfp_t)0x1000000u)
#define __GFP_SKIP_ZERO ((gfp_t)0x0u)
#define __GFP_SKIP_KASAN ((gfp_t)0x0u)
#define __GFP_NOLOCKDEP ((gfp_t)0x0u)
#define __GFP_BITS_SHIFT 25
#define __GFP_BITS_MASK ((gfp_t)0x1ffffffu)
#define GFP_ZONEMASK ((gfp_t)0xfu)

/* asm/page_types.h (hwemu/page_types.py) */
#define PAGE_SHIFT 12
#define PAGE_SIZE 0x1000UL
#define PAGE_MASK 0xfffffffffffff000UL

/* include/linux/numa.h, mmzone.h, mm.h (hwemu/mmzone.py, hwemu/page.py) */
#define NUMA_NO_NODE (-1)
#define NODES_SHIFT 6
#define MAX_NUMNODES 64
#define MAX_PAGE_ORDER 10
#define NODES_PGSHIFT 58
#define ZONES_PGSHIFT 55
#define NODES_MASK 63
#define ZONES_MASK 7

/* include/linux/slab.h (hwemu/slab.py) */
#define SLAB_ACCOUNT ((slab_flags_t)0x4000U)
#define SLAB_CACHE_DMA ((slab_flags_t)0x20U)
#define SLAB_CACHE_DMA32 ((slab_flags_t)0x40U)
#define SLAB_CONSISTENCY_CHECKS ((slab_flags_t)0x1U)
#define SLAB_CORE_FLAGS ((slab_flags_t)0x135b78U)
#define SLAB_DEBUG_FLAGS ((slab_flags_t)0x487U)
#define SLAB_DEBUG_OBJECTS ((slab_flags_t)0x0U)
#define SLAB_FAILSLAB ((slab_flags_t)0x2000U)
#define SLAB_FLAGS_PERMITTED ((slab_flags_t)0x13ffffU)
#define SLAB_HWCACHE_ALIGN ((slab_flags_t)0x10U)
#define SLAB_KASAN ((slab_flags_t)0x8000U)
#define SLAB_KMALLOC ((slab_flags_t)0x8U)
#define SLAB_NOLEAKTRACE ((slab_flags_t)0x800U)
#define SLAB_NO_MERGE ((slab_flags_t)0x1000U)
#define SLAB_NO_OBJ_EXT ((slab_flags_t)0x100000U)
#define SLAB_NO_USER_FLAGS ((slab_flags_t)0x10000U)
#define SLAB_PANIC ((slab_flags_t)0x100U)
#define SLAB_POISON ((slab_flags_t)0x4U)
#define SLAB_RECLAIM_ACCOUNT ((slab_flags_t)0x20000U)
#define SLAB_RED_ZONE ((slab_flags_t)0x2U)
#define SLAB_SKIP_KFENCE ((slab_flags_t)0x0U)
#define SLAB_STORE_USER ((slab_flags_t)0x80U)
#define SLAB_TEMPORARY ((slab_flags_t)0x20000U)
#define SLAB_TRACE ((slab_flags_t)0x400U)
#define SLAB_TYPESAFE_BY_RCU ((slab_flags_t)0x200U)
#define KMALLOC_MIN_SIZE 8
#define KMALLOC_SHIFT_LOW 3
#define KMALLOC_SHIFT_HIGH 13
#define KMALLOC_SHIFT_MAX 22
#define KMALLOC_MAX_CACHE_SIZE 0x2000UL
#define KMALLOC_MAX_SIZE 0x400000UL
#define KMALLOC_MAX_ORDER 10
#define ARCH_KMALLOC_MINALIGN 8
#define ARCH_SLAB_MINALIGN 8
#define ZERO_SIZE_PTR ((void *)16)
#define L1_CACHE_BYTES 64

/* include/linux/poison.h (mempool/_mempool.py, hwemu/wait.py) */
#define POISON_INUSE 0x5a
#define POISON_FREE 0x6b
#define POISON_END 0xa5
#define HW_LIST_POISON1 0xdead000000000100UL

/* include/linux/sched.h, preempt.h (hwemu/sched.py) */
#define TASK_RUNNING 0
#define TASK_INTERRUPTIBLE 1
#define TASK_UNINTERRUPTIBLE 2
#define TASK_WAKEKILL 256
#define TASK_KILLABLE 258
#define TASK_COMM_LEN 16
#define PREEMPT_OFFSET 1
#define SOFTIRQ_OFFSET 256
#define HARDIRQ_OFFSET 0x10000
#define NMI_OFFSET 0x100000
#define PREEMPT_MASK 255
#define SOFTIRQ_MASK 0xff00
#define HARDIRQ_MASK 0xf0000
#define NMI_MASK 0xf00000
#define MAX_SCHEDULE_TIMEOUT 0x7fffffffffffffffL

/* include/linux/fault-inject.h (hwemu/fault_inject.py) */
#define HW_FAULT_NOWARN 1

/* spinlock_t with CONFIG_DEBUG_SPINLOCK (hwemu/spinlock.py) */
#define SPINLOCK_MAGIC 0xdead4eadU
#define HW_SPINLOCK_OWNER_CPU_INIT 0xffffffffU
#define HW_SPINLOCK_OWNER_INIT 0xffffffffffffffffUL
#define HW_SPINLOCK_T_SIZE 24
#define HW_SPINLOCK_T_LAYOUT(F) F(raw, 0) F(magic, 4) F(owner_cpu, 8) F(owner, 16)

/* wait_queue_head_t (hwemu/wait.py) */
#define HW_WAIT_QUEUE_HEAD_T_SIZE 40
#define HW_WAIT_QUEUE_HEAD_T_LAYOUT(F) F(lock, 0) F(head, 24)

/* struct page (hwemu/page.py) */
#define HW_STRUCT_PAGE_SIZE 64
#define HW_STRUCT_PAGE_LAYOUT(F) F(flags, 0) F(lru.next, 8) F(lru.prev, 16) F(mapping, 24) F(index, 32) F(private, 40) F(_mapcount, 48) F(_refcount, 52) F(memcg_data, 56)

/* struct kmem_cache, mm/slab.h (hwemu/slab.py) */
#define HW_STRUCT_KMEM_CACHE_SIZE 96
#define HW_STRUCT_KMEM_CACHE_LAYOUT(F) F(cpu_sheaves, 0) F(flags, 8) F(min_partial, 16) F(size, 24) F(object_size, 28) F(reciprocal_size, 32) F(offset, 40) F(sheaf_capacity, 44) F(oo, 48) F(min, 52) F(allocflags, 56) F(refcount, 60) F(ctor, 64) F(inuse, 72) F(align, 76) F(red_left_pad, 80) F(name, 88)

/* struct mempool (mempool/_mempool.py) */
#define HW_STRUCT_MEMPOOL_SIZE 104
#define HW_STRUCT_MEMPOOL_LAYOUT(F) F(lock, 0) F(min_nr, 24) F(curr_nr, 28) F(elements, 32) F(pool_data, 40) F(alloc, 48) F(free, 56) F(wait, 64)

#endif
