/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/debugfs.h as without CONFIG_DEBUG_FS: there is no debugfs to
 * C code (hwemu's fault attributes come through linux/fault-inject.h). */
#ifndef _DEBUGFS_H_
#define _DEBUGFS_H_

#include <linux/err.h>
#include <linux/types.h>

struct dentry;
struct file_operations;

static inline struct dentry *debugfs_create_dir(const char *name, struct dentry *parent)
{
	return ERR_PTR(-ENODEV);
}

static inline struct dentry *debugfs_create_file(const char *name, umode_t mode,
						 struct dentry *parent, void *data,
						 const struct file_operations *fops)
{
	return ERR_PTR(-ENODEV);
}

static inline void debugfs_remove(struct dentry *dentry) { }
#define debugfs_remove_recursive debugfs_remove
static inline void debugfs_create_u32(const char *name, umode_t mode,
				      struct dentry *parent, u32 *value) { }
static inline void debugfs_create_u64(const char *name, umode_t mode,
				      struct dentry *parent, u64 *value) { }
static inline void debugfs_create_ulong(const char *name, umode_t mode,
					struct dentry *parent, unsigned long *value) { }
static inline void debugfs_create_bool(const char *name, umode_t mode,
				       struct dentry *parent, bool *value) { }

#endif
