/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/typecheck.h. */
#ifndef _LINUX_TYPECHECK_H
#define _LINUX_TYPECHECK_H

/* 1, with a warning at compile time when x is not of type 'type' */
#define typecheck(type, x) \
({	type __dummy; \
	typeof(x) __dummy2; \
	(void)(&__dummy == &__dummy2); \
	1; \
})

#endif
