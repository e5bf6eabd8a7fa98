/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/sprintf.h, on hwemu's own vsnprintf (hwemu/vsprintf.h). */
#ifndef _LINUX_KERNEL_SPRINTF_H_
#define _LINUX_KERNEL_SPRINTF_H_

#include <linux/types.h>
#include <linux/stdarg.h>
#include <linux/limits.h>
#include <hwemu/vsprintf.h>

static inline int hw_vscnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	int n = hw_vsnprintf(buf, size, fmt, ap);

	if (size == 0)
		return 0;
	return (size_t)n < size ? n : (int)(size - 1);
}

static inline __printf(3, 4) int hw_scnprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = hw_vscnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

static inline __printf(2, 3) int hw_sprintf(char *buf, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = hw_vsnprintf(buf, INT_MAX, fmt, ap);
	va_end(ap);
	return n;
}

/* hwemu's names, so that gcc's knowledge of the libc functions never applies */
#define vsnprintf	hw_vsnprintf
#define snprintf	hw_snprintf
#define vscnprintf	hw_vscnprintf
#define scnprintf	hw_scnprintf
#define sprintf		hw_sprintf

#endif
