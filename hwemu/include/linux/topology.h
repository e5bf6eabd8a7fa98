/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/topology.h: the node of the emulated task's CPU. */
#ifndef _LINUX_TOPOLOGY_H
#define _LINUX_TOPOLOGY_H

#include <linux/numa.h>
#include <linux/smp.h>
#include <hwemu/hw.h>

static inline int numa_node_id(void)
{
	return HW_RT(task_info)(HW_TASK_NODE);
}

static inline int numa_mem_id(void)
{
	return numa_node_id();
}

#endif
