/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/hardirq.h: the context tests are in linux/preempt.h. */
#ifndef LINUX_HARDIRQ_H
#define LINUX_HARDIRQ_H

#include <linux/preempt.h>

#endif
