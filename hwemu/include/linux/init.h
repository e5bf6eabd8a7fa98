/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hwemu: include/linux/init.h. Init and exit code stay in the normal sections (the
 * module is never freed in part). Each initcall puts a pointer to its function in
 * the section hw_initcalls (exit calls: hw_exitcalls); hwemu.kbuild runs them at load
 * (unload) in the order they appear, whatever their level.
 */
#ifndef _LINUX_INIT_H
#define _LINUX_INIT_H

#include <linux/compiler.h>
#include <linux/stringify.h>

#define __init
#define __exit
#define __initdata
#define __exitdata
#define __initconst
#define __ref
#define __refdata
#define __meminit
#define __meminitdata
#define __init_or_module
#define __ro_after_init

typedef int (*initcall_t)(void);
typedef void (*exitcall_t)(void);

#define __hw_initcall(fn, id)						\
	static initcall_t __PASTE(__PASTE(__hw_initcall_, fn), id)	\
	__attribute__((used, section("hw_initcalls"))) = fn
#define __hw_exitcall(fn)						\
	static exitcall_t __PASTE(__hw_exitcall_, fn)			\
	__attribute__((used, section("hw_exitcalls"))) = fn

#define early_initcall(fn)		__hw_initcall(fn, early)
#define pure_initcall(fn)		__hw_initcall(fn, 0)
#define core_initcall(fn)		__hw_initcall(fn, 1)
#define core_initcall_sync(fn)		__hw_initcall(fn, 1s)
#define postcore_initcall(fn)		__hw_initcall(fn, 2)
#define postcore_initcall_sync(fn)	__hw_initcall(fn, 2s)
#define arch_initcall(fn)		__hw_initcall(fn, 3)
#define arch_initcall_sync(fn)		__hw_initcall(fn, 3s)
#define subsys_initcall(fn)		__hw_initcall(fn, 4)
#define subsys_initcall_sync(fn)	__hw_initcall(fn, 4s)
#define fs_initcall(fn)			__hw_initcall(fn, 5)
#define fs_initcall_sync(fn)		__hw_initcall(fn, 5s)
#define rootfs_initcall(fn)		__hw_initcall(fn, rootfs)
#define device_initcall(fn)		__hw_initcall(fn, 6)
#define device_initcall_sync(fn)	__hw_initcall(fn, 6s)
#define late_initcall(fn)		__hw_initcall(fn, 7)
#define late_initcall_sync(fn)		__hw_initcall(fn, 7s)
#define __initcall(fn)			device_initcall(fn)
#define __exitcall(fn)			__hw_exitcall(fn)

#define module_init(fn)			__initcall(fn)
#define module_exit(fn)			__exitcall(fn)

#endif
