/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/types.h (with asm-generic/int-ll64.h), 64-bit. */
#ifndef _LINUX_TYPES_H
#define _LINUX_TYPES_H

#include <linux/compiler_types.h>
#include <linux/stddef.h>

typedef signed char		s8;
typedef unsigned char		u8;
typedef signed short		s16;
typedef unsigned short		u16;
typedef signed int		s32;
typedef unsigned int		u32;
typedef signed long long	s64;
typedef unsigned long long	u64;
typedef s8 __s8;
typedef u8 __u8;
typedef s16 __s16;
typedef u16 __u16;
typedef s32 __s32;
typedef u32 __u32;
typedef s64 __s64;
typedef u64 __u64;
typedef u16 __le16, __be16;
typedef u32 __le32, __be32;
typedef u64 __le64, __be64;

typedef s8 int8_t;
typedef u8 uint8_t;
typedef s16 int16_t;
typedef u16 uint16_t;
typedef s32 int32_t;
typedef u32 uint32_t;
typedef s64 int64_t;
typedef u64 uint64_t;
typedef u8 u_int8_t;
typedef u16 u_int16_t;
typedef u32 u_int32_t;
typedef u64 u_int64_t;

typedef __SIZE_TYPE__		size_t;
typedef long			ssize_t;
typedef long			ptrdiff_t;
typedef unsigned long		uintptr_t;
typedef long			intptr_t;
typedef long long		loff_t;
typedef long			off_t;
typedef int			pid_t;
typedef unsigned int		uid_t, gid_t;
typedef unsigned short		umode_t;
typedef unsigned int		fmode_t;
typedef long			clock_t;
typedef long			time_t;
typedef s64			time64_t;
typedef s64			ktime_t;

typedef unsigned char		u_char, unchar;
typedef unsigned short		u_short, ushort;
typedef unsigned int		u_int, uint;
typedef unsigned long		u_long, ulong;

typedef _Bool bool;
enum {
	false	= 0,
	true	= 1
};

typedef u64 phys_addr_t;
typedef u64 dma_addr_t;
typedef phys_addr_t resource_size_t;
typedef unsigned long pgoff_t;
typedef u64 sector_t;
typedef u64 blkcnt_t;

/* allocation flags (gfp_types.h, slab.h): plain unsigned ints here */
typedef unsigned int __bitwise gfp_t;
typedef unsigned int __bitwise slab_flags_t;

typedef struct {
	int counter;
} atomic_t;

typedef struct {
	s64 counter;
} atomic64_t;

struct list_head {
	struct list_head *next, *prev;
};

struct hlist_head {
	struct hlist_node *first;
};

struct hlist_node {
	struct hlist_node *next, **pprev;
};

struct callback_head {
	struct callback_head *next;
	void (*func)(struct callback_head *head);
} __attribute__((aligned(sizeof(void *))));
#define rcu_head callback_head

#endif
