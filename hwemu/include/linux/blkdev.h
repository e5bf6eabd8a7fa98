/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/blkdev.h: no block layer for C code; old mm/mempool.c
 * included it for io_schedule() and the like. */
#ifndef _LINUX_BLKDEV_H
#define _LINUX_BLKDEV_H

#include <linux/sched.h>
#include <linux/wait.h>

struct block_device;
struct request_queue;
struct bio;

#endif
