/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/log2.h (and the fls/ffs family of linux/bitops.h). */
#ifndef _LINUX_LOG2_H
#define _LINUX_LOG2_H

#include <linux/types.h>
#include <linux/compiler.h>

/* 1-based index of the last (first) set bit, 0 for none */
static __always_inline int fls(unsigned int x)
{
	return x ? 32 - __builtin_clz(x) : 0;
}

static __always_inline int fls64(u64 x)
{
	return x ? 64 - __builtin_clzll(x) : 0;
}

static __always_inline int ffs(int x)
{
	return __builtin_ffs(x);
}

/* 0-based index of the first (last) set bit; undefined for 0 */
static __always_inline unsigned long __ffs(unsigned long x)
{
	return __builtin_ctzl(x);
}

static __always_inline unsigned long __fls(unsigned long x)
{
	return 63 - __builtin_clzl(x);
}

static __always_inline unsigned long ffz(unsigned long x)
{
	return __ffs(~x);
}

static __always_inline __attribute_const__ bool is_power_of_2(unsigned long n)
{
	return n != 0 && (n & (n - 1)) == 0;
}

/* floor(log2(n)), n > 0; -1 for 0 as the kernel's */
#define ilog2(n)	((int)fls64((u64)(n)) - 1)

static __always_inline unsigned long __roundup_pow_of_two(unsigned long n)
{
	return 1UL << fls64(n - 1);
}

static __always_inline unsigned long __rounddown_pow_of_two(unsigned long n)
{
	return 1UL << (fls64(n) - 1);
}

#define roundup_pow_of_two(n)	__roundup_pow_of_two(n)
#define rounddown_pow_of_two(n)	__rounddown_pow_of_two(n)
#define order_base_2(n)		((n) > 1 ? ilog2((n) - 1) + 1 : 0)

#endif
