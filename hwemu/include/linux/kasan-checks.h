/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/kasan-checks.h: explicit checks of an access by hwemu's KASAN
 * (a report when it is bad; nothing when KASAN is off). */
#ifndef _LINUX_KASAN_CHECKS_H
#define _LINUX_KASAN_CHECKS_H

#include <linux/types.h>
#include <hwemu/hw.h>

static noinline __maybe_unused bool kasan_check_read(const volatile void *p, unsigned int size)
{
	HW_RT(asan_check)(HW_PTR(p), size, 0, (unsigned long)__builtin_return_address(0));
	return true;
}

static noinline __maybe_unused bool kasan_check_write(const volatile void *p, unsigned int size)
{
	HW_RT(asan_check)(HW_PTR(p), size, 1, (unsigned long)__builtin_return_address(0));
	return true;
}

#define __kasan_check_read	kasan_check_read
#define __kasan_check_write	kasan_check_write

#endif
