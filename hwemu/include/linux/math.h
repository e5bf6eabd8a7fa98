/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/math.h. */
#ifndef _LINUX_MATH_H
#define _LINUX_MATH_H

#define DIV_ROUND_UP(n, d)	(((n) + (d) - 1) / (d))
#define DIV_ROUND_DOWN_ULL(ll, d) ({ unsigned long long _tmp = (ll); _tmp / (d); })
#define DIV_ROUND_UP_ULL(ll, d)	DIV_ROUND_DOWN_ULL((unsigned long long)(ll) + (d) - 1, (d))
#define DIV_ROUND_CLOSEST(x, d)	(((x) + ((d) / 2)) / (d))
/* y a power of two */
#define __round_mask(x, y)	((__typeof__(x))((y) - 1))
#define round_up(x, y)		((((x) - 1) | __round_mask(x, y)) + 1)
#define round_down(x, y)	((x) & ~__round_mask(x, y))
/* any y */
#define roundup(x, y)		({ typeof(y) __y = (y); (((x) + (__y - 1)) / __y) * __y; })
#define rounddown(x, y)		({ typeof(x) __x = (x); __x - (__x % (y)); })
#define abs(x)			({ __auto_type __v = (x); __v < 0 ? -__v : __v; })
#define mult_frac(x, n, d)	({ typeof(x) __q = (x) / (d), __r = (x) % (d); \
				   __q * (n) + __r * (n) / (d); })

#endif
