/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hwemu: include/linux/string.h, without libc. Built with KASAN
 * (__SANITIZE_ADDRESS__), memset/memcpy/memmove/memcmp/strlen check their whole
 * ranges with hwemu's KASAN first, as the kernel's instrumented ones do (the
 * compiler leaves these calls unchecked); they are out of line there, so that a
 * report names their caller. The others are loops the compiler instruments itself.
 * hwemu's names (hw_*) keep gcc's knowledge of the libc functions out of the way.
 */
#ifndef _LINUX_STRING_H_
#define _LINUX_STRING_H_

#include <linux/alloc_tag.h>
#include <linux/compiler.h>
#include <linux/err.h>
#include <linux/errno.h>
#include <linux/gfp_types.h>
#include <linux/limits.h>
#include <linux/stddef.h>
#include <linux/types.h>
#include <hwemu/hw.h>

#ifdef __SANITIZE_ADDRESS__
#define __hw_str_fn		static noinline __maybe_unused
#define __hw_str_check(p, n, w)	\
	HW_RT(asan_check)(HW_PTR(p), n, w, (unsigned long)__builtin_return_address(0))
#else
#define __hw_str_fn		static __always_inline
#define __hw_str_check(p, n, w)	do { } while (0)
#endif

__hw_str_fn void *hw_memset(void *s, int c, size_t n)
{
	__hw_str_check(s, n, 1);
	return __builtin_memset(s, c, n);
}

__hw_str_fn void *hw_memcpy(void *dst, const void *src, size_t n)
{
	__hw_str_check(src, n, 0);
	__hw_str_check(dst, n, 1);
	return __builtin_memcpy(dst, src, n);
}

__hw_str_fn void *hw_memmove(void *dst, const void *src, size_t n)
{
	__hw_str_check(src, n, 0);
	__hw_str_check(dst, n, 1);
	return __builtin_memmove(dst, src, n);
}

__hw_str_fn int hw_memcmp(const void *a, const void *b, size_t n)
{
	__hw_str_check(a, n, 0);
	__hw_str_check(b, n, 0);
	return __builtin_memcmp(a, b, n);
}

__hw_str_fn size_t hw_strlen(const char *s)
{
	size_t n = __builtin_strlen(s);

	__hw_str_check(s, n + 1, 0);
	return n;
}

#define memset	hw_memset
#define memcpy	hw_memcpy
#define memmove	hw_memmove
#define memcmp	hw_memcmp
#define strlen	hw_strlen

static inline size_t hw_strnlen(const char *s, size_t max)
{
	size_t n = 0;

	while (n < max && s[n])
		n++;
	return n;
}

static inline int hw_strncmp(const char *a, const char *b, size_t n)
{
	for (; n; a++, b++, n--) {
		if (*a != *b)
			return *(const unsigned char *)a < *(const unsigned char *)b ? -1 : 1;
		if (!*a)
			break;
	}
	return 0;
}

static inline int hw_strcmp(const char *a, const char *b)
{
	return hw_strncmp(a, b, SIZE_MAX);
}

static inline char *hw_strchr(const char *s, int c)
{
	for (; *s != (char)c; s++)
		if (!*s)
			return NULL;
	return (char *)s;
}

static inline char *hw_strrchr(const char *s, int c)
{
	const char *last = NULL;

	do {
		if (*s == (char)c)
			last = s;
	} while (*s++);
	return (char *)last;
}

static inline void *hw_memchr(const void *s, int c, size_t n)
{
	const unsigned char *p = s;

	for (; n; p++, n--)
		if (*p == (unsigned char)c)
			return (void *)p;
	return NULL;
}

#define strnlen	hw_strnlen
#define strncmp	hw_strncmp
#define strcmp	hw_strcmp
#define strchr	hw_strchr
#define strrchr	hw_strrchr
#define memchr	hw_memchr

/* copy a NUL-terminated string into size bytes; -E2BIG if it had to be cut */
static inline ssize_t sized_strscpy(char *dst, const char *src, size_t size)
{
	size_t i;

	if (size == 0)
		return -E2BIG;
	for (i = 0; i < size - 1 && src[i]; i++)
		dst[i] = src[i];
	dst[i] = '\0';
	return src[i] ? -E2BIG : (ssize_t)i;
}

#define __hw_first_arg(a, ...)	a
/* strscpy(dst, src[, size]): size defaults to sizeof(dst), dst an array */
#define strscpy(dst, src, ...) \
	sized_strscpy(dst, src, __hw_first_arg(__VA_ARGS__ __VA_OPT__(,) sizeof(dst)))

static inline void memzero_explicit(void *s, size_t count)
{
	memset(s, 0, count);
	barrier_data(s);
}

static inline bool mem_is_zero(const void *s, size_t n)
{
	const unsigned char *p = s;

	for (; n; p++, n--)
		if (*p)
			return false;
	return true;
}

static inline bool str_has_prefix(const char *str, const char *prefix)
{
	return strncmp(str, prefix, strlen(prefix)) == 0;
}

/* kmemdup(), kstrdup(), kstrndup(): copies in kmalloc memory */
static inline void *kmemdup_noprof(const void *src, size_t len, gfp_t gfp)
{
	void *p = (void *)HW_RT(kmalloc)(len, gfp, NUMA_NO_NODE);

	if (p)
		memcpy(p, src, len);
	return p;
}

static inline char *kstrndup_noprof(const char *s, size_t max, gfp_t gfp)
{
	size_t len;
	char *buf;

	if (!s)
		return NULL;
	len = strnlen(s, max);
	buf = (char *)HW_RT(kmalloc)(len + 1, gfp, NUMA_NO_NODE);
	if (buf) {
		memcpy(buf, s, len);
		buf[len] = '\0';
	}
	return buf;
}

static inline char *kstrdup_noprof(const char *s, gfp_t gfp)
{
	return kstrndup_noprof(s, SIZE_MAX, gfp);
}

#define kmemdup(...)	alloc_hooks(kmemdup_noprof(__VA_ARGS__))
#define kstrdup(...)	alloc_hooks(kstrdup_noprof(__VA_ARGS__))
#define kstrndup(...)	alloc_hooks(kstrndup_noprof(__VA_ARGS__))

#endif
