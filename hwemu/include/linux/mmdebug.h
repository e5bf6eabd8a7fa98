/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/mmdebug.h: the VM_ checks, live under CONFIG_DEBUG_VM. */
#ifndef LINUX_MM_DEBUG_H
#define LINUX_MM_DEBUG_H 1

#include <linux/bug.h>
#include <linux/printk.h>

struct page;

#ifdef CONFIG_DEBUG_VM
#define VM_BUG_ON(cond)			BUG_ON(cond)
#define VM_BUG_ON_PAGE(cond, page) do {					\
	if (unlikely(cond)) {						\
		printk(KERN_EMERG "page:%px\n", (void *)(page));	\
		BUG();							\
	}								\
} while (0)
#define VM_WARN_ON(cond)		(void)WARN_ON(cond)
#define VM_WARN_ON_ONCE(cond)		(void)WARN_ON_ONCE(cond)
#define VM_WARN_ONCE(cond, format...)	(void)WARN_ONCE(cond, format)
#define VM_WARN(cond, format...)	(void)WARN(cond, format)
#define VM_WARN_ON_ONCE_PAGE(cond, page) WARN_ON_ONCE(cond)
#else
#define VM_BUG_ON(cond)			BUILD_BUG_ON_INVALID(cond)
#define VM_BUG_ON_PAGE(cond, page)	VM_BUG_ON(cond)
#define VM_WARN_ON(cond)		BUILD_BUG_ON_INVALID(cond)
#define VM_WARN_ON_ONCE(cond)		BUILD_BUG_ON_INVALID(cond)
#define VM_WARN_ONCE(cond, format...)	BUILD_BUG_ON_INVALID(cond)
#define VM_WARN(cond, format...)	BUILD_BUG_ON_INVALID(cond)
#define VM_WARN_ON_ONCE_PAGE(cond, page) BUILD_BUG_ON_INVALID(cond)
#endif

#endif
