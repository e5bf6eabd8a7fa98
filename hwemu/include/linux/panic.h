/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/panic.h: panic() stops the machine (it does not return). */
#ifndef _LINUX_PANIC_H
#define _LINUX_PANIC_H

#include <linux/compiler.h>
#include <linux/stdarg.h>
#include <hwemu/hw.h>
#include <hwemu/vsprintf.h>

static inline __printf(1, 2) __noreturn __cold void panic(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	hw_vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	HW_RT(panic)(buf);
	__builtin_unreachable();
}

#endif
