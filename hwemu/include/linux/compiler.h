/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/compiler.h (and asm/rwonce.h's READ_ONCE/WRITE_ONCE). */
#ifndef _LINUX_COMPILER_H
#define _LINUX_COMPILER_H

#include <linux/compiler_types.h>

#define likely(x)	__builtin_expect(!!(x), 1)
#define unlikely(x)	__builtin_expect(!!(x), 0)

#define barrier()		__asm__ __volatile__("" : : : "memory")
#define barrier_data(p)		__asm__ __volatile__("" : : "r"(p) : "memory")
#define unreachable()		__builtin_unreachable()
#define OPTIMIZER_HIDE_VAR(v)	__asm__ ("" : "=r"(v) : "0"(v))
#define RELOC_HIDE(p, off)	((typeof(p))((unsigned long)(p) + (off)))

/* one access the compiler may neither tear, fuse nor move out of a loop */
#define __READ_ONCE(x)	(*(const volatile __unqual_scalar_typeof(x) *)&(x))
#define READ_ONCE(x)	({ _Static_assert(__native_word(x) || sizeof(x) == sizeof(long long), \
			   "READ_ONCE of an odd size"); __READ_ONCE(x); })
#define WRITE_ONCE(x, val) \
	do { *(volatile typeof(x) *)&(x) = (val); } while (0)
#define data_race(expr)	({ __unqual_scalar_typeof(({ expr; })) __v = ({ expr; }); __v; })

/* where the caller returns to, and where we are */
#define _RET_IP_	((unsigned long)__builtin_return_address(0))
#define _THIS_IP_	({ __label__ __here; __here: (unsigned long)&&__here; })

#define __must_be_array(a) \
	_Static_assert(!__same_type((a), &(a)[0]), "not an array")

#endif
