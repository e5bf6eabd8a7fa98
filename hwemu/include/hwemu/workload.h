/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hwemu: what a run's custom workload written in C (run.custom.function:
 * "file.c:function", an "int function(void)") sees of its run, as a Python
 * workload sees its `run` argument (hwemu.runs.workloads.CustomTask).
 */
#ifndef _HWEMU_WORKLOAD_H
#define _HWEMU_WORKLOAD_H

#include "hwemu/rt.h"

struct mempool;

/* True once the run's duration has passed or the run was stopped. */
static inline int hwemu_stopping(void)
{
	return __hw_rt->workload(0, (const char *)0, 0) != 0;
}

/* Add n to the workload's counter `name` (shown in the summary, expectable). */
static inline void hwemu_count(const char *name, long n)
{
	__hw_rt->workload(1, name, n);
}

/* The run's pool `name` (run.pools). */
static inline struct mempool *hwemu_pool(const char *name)
{
	return (struct mempool *)__hw_rt->workload(2, name, 0);
}

/* The workload's integer argument `name` (run.custom.args), or `dflt`. */
static inline long hwemu_arg(const char *name, long dflt)
{
	return __hw_rt->workload(3, name, dflt);
}

#endif
