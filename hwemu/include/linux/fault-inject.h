/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hwemu: include/linux/fault-inject.h. A struct fault_attr in C stands for the
 * machine's fault attribute of the same debugfs name (its knobs come from the
 * machine's config): fault_create_debugfs_attr() binds the two, should_fail*() asks
 * hwemu. An attribute never bound never fails.
 */
#ifndef _LINUX_FAULT_INJECT_H
#define _LINUX_FAULT_INJECT_H

#include <linux/err.h>
#include <linux/types.h>
#include <hwemu/hw.h>

struct dentry;

enum fault_flags {
	FAULT_NOWARN = HW_FAULT_NOWARN,
};

struct fault_attr {
	int hw_id;		/* hwemu's attribute, 0 until bound */
};

#define FAULT_ATTR_INITIALIZER { .hw_id = 0 }
#define DECLARE_FAULT_ATTR(name) struct fault_attr name = FAULT_ATTR_INITIALIZER

/* bind attr to hwemu's attribute 'name'; parent is ignored */
static inline struct dentry *fault_create_debugfs_attr(const char *name,
						       struct dentry *parent,
						       struct fault_attr *attr)
{
	int id = HW_RT(fault_attr_bind)(name, HW_PTR(attr));

	if (id <= 0)
		return ERR_PTR(-ENOMEM);
	attr->hw_id = id;
	return (struct dentry *)attr;
}

static inline bool should_fail_ex(struct fault_attr *attr, ssize_t size, int flags)
{
	if (!attr->hw_id)
		return false;
	return HW_RT(should_fail)(attr->hw_id, size, flags) != 0;
}

static inline bool should_fail(struct fault_attr *attr, ssize_t size)
{
	return should_fail_ex(attr, size, 0);
}

#endif
