/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/module.h: module information is not kept; each macro is a
 * harmless declaration so that it still takes its ';'. */
#ifndef _LINUX_MODULE_H
#define _LINUX_MODULE_H

#include <linux/export.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/stringify.h>
#include <linux/types.h>

struct module;
struct hw_module_info;

#define MODULE_LICENSE(x)		struct hw_module_info
#define MODULE_AUTHOR(x)		struct hw_module_info
#define MODULE_DESCRIPTION(x)		struct hw_module_info
#define MODULE_VERSION(x)		struct hw_module_info
#define MODULE_ALIAS(x)			struct hw_module_info
#define MODULE_SOFTDEP(x)		struct hw_module_info
#define MODULE_FIRMWARE(x)		struct hw_module_info
#define MODULE_INFO(tag, info)		struct hw_module_info
#define MODULE_IMPORT_NS(ns)		struct hw_module_info
#define MODULE_DEVICE_TABLE(type, name)	struct hw_module_info
#define MODULE_PARM_DESC(p, desc)	struct hw_module_info
#define module_param(name, type, perm)	struct hw_module_info
#define module_param_named(name, value, type, perm) struct hw_module_info

#define try_module_get(mod)		true
#define module_put(mod)			do { } while (0)
#define __module_get(mod)		do { } while (0)

#endif
