/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hwemu: what every hwemu kernel header builds on. The table of calls into hwemu
 * (generated/hwemu/rt.h) and the facts whose home is hwemu's Python
 * (generated/hwemu/facts.h).
 *
 * Call a table entry as HW_RT(name)(args...): the parentheses keep a function-like
 * macro of the same name (kmalloc, alloc_pages, ...) from expanding.
 */
#ifndef _HWEMU_HW_H
#define _HWEMU_HW_H

#include <hwemu/rt.h>
#include <hwemu/facts.h>

#define HW_RT(name)	(__hw_rt->name)
#define HW_PTR(p)	((__UINTPTR_TYPE__)(p))

#endif
