/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/time64.h (vdso/time64.h): the unit ratios. */
#ifndef _LINUX_TIME64_H
#define _LINUX_TIME64_H

#define MSEC_PER_SEC	1000L
#define USEC_PER_MSEC	1000L
#define NSEC_PER_USEC	1000L
#define NSEC_PER_MSEC	1000000L
#define USEC_PER_SEC	1000000L
#define NSEC_PER_SEC	1000000000L

#endif
