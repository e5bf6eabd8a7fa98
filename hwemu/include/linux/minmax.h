/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/minmax.h: each argument evaluated once. */
#ifndef _LINUX_MINMAX_H
#define _LINUX_MINMAX_H

#define __hw_cmp(op, x, y) ({ __auto_type __x = (x); __auto_type __y = (y); \
			      __x op __y ? __x : __y; })

#define min(x, y)		__hw_cmp(<, x, y)
#define max(x, y)		__hw_cmp(>, x, y)
#define umin(x, y)		min((x) + 0u + 0ul + 0ull, (y) + 0u + 0ul + 0ull)
#define umax(x, y)		max((x) + 0u + 0ul + 0ull, (y) + 0u + 0ul + 0ull)
#define min3(x, y, z)		min((typeof(min(x, y)))min(x, y), z)
#define max3(x, y, z)		max((typeof(max(x, y)))max(x, y), z)
#define min_not_zero(x, y) ({ typeof(x) __a = (x); typeof(y) __b = (y); \
			      __a == 0 ? __b : ((__b == 0) ? __a : min(__a, __b)); })
#define min_t(type, x, y)	__hw_cmp(<, (type)(x), (type)(y))
#define max_t(type, x, y)	__hw_cmp(>, (type)(x), (type)(y))
#define clamp(val, lo, hi)	min(max(val, lo), hi)
#define clamp_t(type, val, lo, hi) min_t(type, max_t(type, val, lo), hi)
#define clamp_val(val, lo, hi)	clamp_t(typeof(val), val, lo, hi)

#define swap(a, b) \
	do { typeof(a) __tmp = (a); (a) = (b); (b) = __tmp; } while (0)

#endif
