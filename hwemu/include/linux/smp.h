/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/smp.h: the CPU the emulated task runs on. */
#ifndef __LINUX_SMP_H
#define __LINUX_SMP_H

#include <linux/preempt.h>
#include <hwemu/hw.h>

#define raw_smp_processor_id()	HW_RT(task_info)(HW_TASK_CPU)
#define smp_processor_id()	raw_smp_processor_id()
#define get_cpu()		({ preempt_disable(); smp_processor_id(); })
#define put_cpu()		preempt_enable()

#endif
