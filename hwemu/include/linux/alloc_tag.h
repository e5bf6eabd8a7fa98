/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hwemu: include/linux/alloc_tag.h: memory allocation profiling. alloc_hooks(expr)
 * makes this call site the current allocation tag while expr runs (hwemu counts
 * what is allocated under it when profiling is on) and yields expr's value.
 */
#ifndef _LINUX_ALLOC_TAG_H
#define _LINUX_ALLOC_TAG_H

#include <linux/compiler.h>
#include <hwemu/hw.h>

/* With profiling off (the machine's vm.mem_profiling), only the expression. */
#define alloc_hooks(_do_alloc) ({					\
	__UINTPTR_TYPE__ __hw_saved_tag = HW_RT(mem_profiling)() ?	\
		HW_RT(alloc_tag_push)(__FILE__, __LINE__, __func__) : 0;	\
	typeof(_do_alloc) __hw_res = _do_alloc;				\
	if (__hw_saved_tag)						\
		HW_RT(alloc_tag_pop)(__hw_saved_tag);			\
	__hw_res;							\
})

#endif
