/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hwemu: include/linux/atomic.h (with the atomic-instrumented and atomic-long
 * layers): atomic_t, atomic64_t and atomic_long_t on gcc's __atomic builtins. Plain
 * read/set are relaxed; the value-returning operations are fully ordered.
 */
#ifndef _LINUX_ATOMIC_H
#define _LINUX_ATOMIC_H

#include <linux/compiler.h>
#include <linux/types.h>
#include <asm/barrier.h>

#define __HW_SC __ATOMIC_SEQ_CST

#define __HW_ATOMIC_OPS(pfx, atype, T)						\
static __always_inline T pfx##_read(const atype *v)				\
{ return __atomic_load_n(&v->counter, __ATOMIC_RELAXED); }			\
static __always_inline T pfx##_read_acquire(const atype *v)			\
{ return __atomic_load_n(&v->counter, __ATOMIC_ACQUIRE); }			\
static __always_inline void pfx##_set(atype *v, T i)				\
{ __atomic_store_n(&v->counter, i, __ATOMIC_RELAXED); }			\
static __always_inline void pfx##_set_release(atype *v, T i)			\
{ __atomic_store_n(&v->counter, i, __ATOMIC_RELEASE); }			\
static __always_inline void pfx##_add(T i, atype *v)				\
{ __atomic_fetch_add(&v->counter, i, __ATOMIC_RELAXED); }			\
static __always_inline void pfx##_sub(T i, atype *v)				\
{ __atomic_fetch_sub(&v->counter, i, __ATOMIC_RELAXED); }			\
static __always_inline void pfx##_inc(atype *v) { pfx##_add(1, v); }		\
static __always_inline void pfx##_dec(atype *v) { pfx##_sub(1, v); }		\
static __always_inline void pfx##_and(T i, atype *v)				\
{ __atomic_fetch_and(&v->counter, i, __ATOMIC_RELAXED); }			\
static __always_inline void pfx##_or(T i, atype *v)				\
{ __atomic_fetch_or(&v->counter, i, __ATOMIC_RELAXED); }			\
static __always_inline void pfx##_xor(T i, atype *v)				\
{ __atomic_fetch_xor(&v->counter, i, __ATOMIC_RELAXED); }			\
static __always_inline T pfx##_add_return(T i, atype *v)			\
{ return __atomic_add_fetch(&v->counter, i, __HW_SC); }			\
static __always_inline T pfx##_sub_return(T i, atype *v)			\
{ return __atomic_sub_fetch(&v->counter, i, __HW_SC); }			\
static __always_inline T pfx##_inc_return(atype *v)				\
{ return pfx##_add_return(1, v); }						\
static __always_inline T pfx##_dec_return(atype *v)				\
{ return pfx##_sub_return(1, v); }						\
static __always_inline T pfx##_fetch_add(T i, atype *v)			\
{ return __atomic_fetch_add(&v->counter, i, __HW_SC); }			\
static __always_inline T pfx##_fetch_sub(T i, atype *v)			\
{ return __atomic_fetch_sub(&v->counter, i, __HW_SC); }			\
static __always_inline T pfx##_fetch_inc(atype *v)				\
{ return pfx##_fetch_add(1, v); }						\
static __always_inline T pfx##_fetch_dec(atype *v)				\
{ return pfx##_fetch_sub(1, v); }						\
static __always_inline T pfx##_fetch_and(T i, atype *v)			\
{ return __atomic_fetch_and(&v->counter, i, __HW_SC); }			\
static __always_inline T pfx##_fetch_or(T i, atype *v)				\
{ return __atomic_fetch_or(&v->counter, i, __HW_SC); }				\
static __always_inline bool pfx##_dec_and_test(atype *v)			\
{ return pfx##_dec_return(v) == 0; }						\
static __always_inline bool pfx##_inc_and_test(atype *v)			\
{ return pfx##_inc_return(v) == 0; }						\
static __always_inline bool pfx##_sub_and_test(T i, atype *v)			\
{ return pfx##_sub_return(i, v) == 0; }					\
static __always_inline bool pfx##_add_negative(T i, atype *v)			\
{ return pfx##_add_return(i, v) < 0; }						\
static __always_inline T pfx##_xchg(atype *v, T i)				\
{ return __atomic_exchange_n(&v->counter, i, __HW_SC); }			\
static __always_inline T pfx##_cmpxchg(atype *v, T old, T new)			\
{										\
	__atomic_compare_exchange_n(&v->counter, &old, new, false,		\
				    __HW_SC, __HW_SC);				\
	return old;								\
}										\
static __always_inline bool pfx##_try_cmpxchg(atype *v, T *old, T new)		\
{										\
	return __atomic_compare_exchange_n(&v->counter, old, new, false,	\
					   __HW_SC, __HW_SC);			\
}										\
/* add a to v unless v is u; true if it added */				\
static __always_inline bool pfx##_add_unless(atype *v, T a, T u)		\
{										\
	T c = pfx##_read(v);							\
										\
	do {									\
		if (c == u)							\
			return false;						\
	} while (!pfx##_try_cmpxchg(v, &c, c + a));				\
	return true;								\
}										\
static __always_inline bool pfx##_inc_not_zero(atype *v)			\
{ return pfx##_add_unless(v, 1, 0); }						\
/* decrement unless that makes v negative; returns the old value - 1 */		\
static __always_inline T pfx##_dec_if_positive(atype *v)			\
{										\
	T c = pfx##_read(v);							\
										\
	do {									\
		if (c <= 0)							\
			return c - 1;						\
	} while (!pfx##_try_cmpxchg(v, &c, c - 1));				\
	return c - 1;								\
}

__HW_ATOMIC_OPS(atomic, atomic_t, int)
__HW_ATOMIC_OPS(atomic64, atomic64_t, s64)

typedef atomic64_t atomic_long_t;
#define ATOMIC_INIT(i)		{ (i) }
#define ATOMIC64_INIT(i)	{ (i) }
#define ATOMIC_LONG_INIT(i)	ATOMIC64_INIT(i)

#define atomic_long_read		atomic64_read
#define atomic_long_set			atomic64_set
#define atomic_long_add			atomic64_add
#define atomic_long_sub			atomic64_sub
#define atomic_long_inc			atomic64_inc
#define atomic_long_dec			atomic64_dec
#define atomic_long_add_return		atomic64_add_return
#define atomic_long_sub_return		atomic64_sub_return
#define atomic_long_inc_return		atomic64_inc_return
#define atomic_long_dec_return		atomic64_dec_return
#define atomic_long_fetch_add		atomic64_fetch_add
#define atomic_long_dec_and_test	atomic64_dec_and_test
#define atomic_long_xchg		atomic64_xchg
#define atomic_long_cmpxchg		atomic64_cmpxchg
#define atomic_long_try_cmpxchg		atomic64_try_cmpxchg
#define atomic_long_add_unless		atomic64_add_unless
#define atomic_long_inc_not_zero	atomic64_inc_not_zero

/* on any scalar: returns the old value */
#define xchg(ptr, x)	__atomic_exchange_n(ptr, x, __HW_SC)
#define cmpxchg(ptr, o, n) ({						\
	typeof(*(ptr)) __old = (o);					\
	__atomic_compare_exchange_n(ptr, &__old, n, false, __HW_SC, __HW_SC); \
	__old; })
#define try_cmpxchg(ptr, oldp, n) \
	__atomic_compare_exchange_n(ptr, oldp, n, false, __HW_SC, __HW_SC)
#define cmpxchg_relaxed		cmpxchg
#define cmpxchg_acquire		cmpxchg
#define cmpxchg_release		cmpxchg
#define xchg_relaxed		xchg

#endif
