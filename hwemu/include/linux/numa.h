/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/numa.h: NUMA_NO_NODE, NODES_SHIFT and MAX_NUMNODES are in
 * hwemu/facts.h (hwemu/mmzone.py). */
#ifndef _LINUX_NUMA_H
#define _LINUX_NUMA_H

#include <hwemu/facts.h>

#define NUMA_NO_MEMBLK	(-1)

#endif
