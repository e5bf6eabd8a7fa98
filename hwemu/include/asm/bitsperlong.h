/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: asm/bitsperlong.h (x86_64). */
#ifndef _ASM_BITSPERLONG_H
#define _ASM_BITSPERLONG_H

#define BITS_PER_LONG		64
#define BITS_PER_LONG_LONG	64

#endif
