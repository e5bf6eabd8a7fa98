/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/writeback.h: there is no writeback to C code here; what its
 * users get through it (the scheduler and wait queues) is included. */
#ifndef WRITEBACK_H
#define WRITEBACK_H

#include <linux/sched.h>
#include <linux/wait.h>

struct writeback_control;

#endif
