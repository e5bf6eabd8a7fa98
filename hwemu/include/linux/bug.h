/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/bug.h and asm-generic/bug.h: BUG() and WARN() reports by hwemu. */
#ifndef _LINUX_BUG_H
#define _LINUX_BUG_H

#include <linux/compiler.h>
#include <linux/build_bug.h>
#include <linux/stdarg.h>
#include <linux/types.h>
#include <hwemu/hw.h>
#include <hwemu/vsprintf.h>

/* an oops at this line; hwemu unwinds, so it never returns */
#define BUG() do {						\
	HW_RT(bug)(__FILE__, __LINE__);				\
	__builtin_unreachable();				\
} while (0)

#define BUG_ON(condition) do { if (unlikely(condition)) BUG(); } while (0)

/* the WARNING splat, with its message when there is one */
static inline __cold void hw_warn(const char *file, int line, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	if (!fmt) {
		HW_RT(warn)(file, line, NULL);
		return;
	}
	va_start(ap, fmt);
	n = hw_vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof(buf) && buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	HW_RT(warn)(file, line, buf);
}

#define __WARN()		hw_warn(__FILE__, __LINE__, NULL)
#define __WARN_printf(taint, fmt, ...) hw_warn(__FILE__, __LINE__, fmt, ##__VA_ARGS__)

#define WARN_ON(condition) ({					\
	int __ret_warn_on = !!(condition);			\
	if (unlikely(__ret_warn_on))				\
		__WARN();					\
	unlikely(__ret_warn_on);				\
})

#define WARN(condition, format...) ({				\
	int __ret_warn_on = !!(condition);			\
	if (unlikely(__ret_warn_on))				\
		__WARN_printf(0, format);			\
	unlikely(__ret_warn_on);				\
})

#define WARN_TAINT(condition, taint, format...)	WARN(condition, format)

#define WARN_ON_ONCE(condition) ({				\
	static bool __section(".data.once") __warned;		\
	int __ret_warn_once = !!(condition);			\
	if (unlikely(__ret_warn_once && !__warned)) {		\
		__warned = true;				\
		__WARN();					\
	}							\
	unlikely(__ret_warn_once);				\
})

#define WARN_ONCE(condition, format...) ({			\
	static bool __section(".data.once") __warned;		\
	int __ret_warn_once = !!(condition);			\
	if (unlikely(__ret_warn_once && !__warned)) {		\
		__warned = true;				\
		__WARN_printf(0, format);			\
	}							\
	unlikely(__ret_warn_once);				\
})

#define WARN_ON_SMP(x)		WARN_ON(x)

#endif
