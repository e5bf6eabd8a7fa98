/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/export.h: every global of a module is reachable; exports
 * only redeclare the symbol (so that a misspelt one still fails to compile). */
#ifndef _LINUX_EXPORT_H
#define _LINUX_EXPORT_H

#define EXPORT_SYMBOL(sym)		extern typeof(sym) sym
#define EXPORT_SYMBOL_GPL(sym)		extern typeof(sym) sym
#define EXPORT_SYMBOL_NS(sym, ns)	extern typeof(sym) sym
#define EXPORT_SYMBOL_NS_GPL(sym, ns)	extern typeof(sym) sym
#define EXPORT_SYMBOL_FOR_MODULES(sym, mods) extern typeof(sym) sym
#define THIS_MODULE			((struct module *)0)

#endif
