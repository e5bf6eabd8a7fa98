/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/compiler_types.h and compiler_attributes.h, for gcc. */
#ifndef _LINUX_COMPILER_TYPES_H
#define _LINUX_COMPILER_TYPES_H

/* sparse annotations: nothing to the compiler */
#define __user
#define __kernel
#define __iomem
#define __percpu
#define __rcu
#define __force
#define __bitwise
#define __nocast
#define __safe
#define __private
#define __must_hold(x)
#define __acquires(x)
#define __releases(x)
#define __acquire(x)	((void)0)
#define __release(x)	((void)0)
#define __cond_lock(x, c)	(c)

#define __always_inline		inline __attribute__((__always_inline__))
#define noinline		__attribute__((__noinline__))
#define __noreturn		__attribute__((__noreturn__))
#define __malloc		__attribute__((__malloc__))
#define __must_check		__attribute__((__warn_unused_result__))
#define __used			__attribute__((__used__))
#define __maybe_unused		__attribute__((__unused__))
#define __always_unused		__attribute__((__unused__))
#define __aligned(x)		__attribute__((__aligned__(x)))
#define __packed		__attribute__((__packed__))
#define __cold			__attribute__((__cold__))
#define __pure			__attribute__((__pure__))
#define __weak			__attribute__((__weak__))
#define __section(s)		__attribute__((__section__(s)))
#define __printf(a, b)		__attribute__((__format__(printf, a, b)))
#define __scanf(a, b)		__attribute__((__format__(scanf, a, b)))
#define __alloc_size(x, ...)	__attribute__((__alloc_size__(x, ## __VA_ARGS__)))
#define __realloc_size(x, ...)	__alloc_size(x, ## __VA_ARGS__)
#define __assume_aligned(a, ...) __attribute__((__assume_aligned__(a, ## __VA_ARGS__)))
#define __nonstring		__attribute__((__nonstring__))
#define __visible		__attribute__((__externally_visible__))
#define __mode(x)		__attribute__((__mode__(x)))
#define __counted_by(m)
#define __no_sanitize_address	__attribute__((__no_sanitize_address__))
#define __no_kasan_or_inline	__no_sanitize_address notrace __maybe_unused
#define notrace			__attribute__((__no_instrument_function__))
#define __noinline_for_stack	noinline
#define __flatten		__attribute__((__flatten__))
#define __attribute_const__	__attribute__((__const__))
#define __latent_entropy
#define __randomize_layout
#define __no_randomize_layout
#define asmlinkage
#define fallthrough		__attribute__((__fallthrough__))

#define __same_type(a, b)	__builtin_types_compatible_p(typeof(a), typeof(b))
#define __is_constexpr(x)	__builtin_constant_p(x)
#define __native_word(t) \
	(sizeof(t) == sizeof(char) || sizeof(t) == sizeof(short) || \
	 sizeof(t) == sizeof(int) || sizeof(t) == sizeof(long))
/* the type of x without its qualifiers, for scalars */
#define __unqual_scalar_typeof(x) typeof(_Generic((x),				\
	_Bool: (_Bool)0, char: (char)0,						\
	signed char: (signed char)0, unsigned char: (unsigned char)0,		\
	short: (short)0, unsigned short: (unsigned short)0,			\
	int: (int)0, unsigned int: (unsigned int)0,				\
	long: (long)0, unsigned long: (unsigned long)0,				\
	long long: (long long)0, unsigned long long: (unsigned long long)0,	\
	default: (x)))

#endif
