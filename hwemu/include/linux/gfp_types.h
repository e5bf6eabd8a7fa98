/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hwemu: include/linux/gfp_types.h. Every __GFP_* flag and GFP_* mask, with
 * __GFP_BITS_SHIFT and __GFP_BITS_MASK, is in hwemu/facts.h, generated from
 * hwemu/gfp.py (its GFP_TABLE), so that C and Python agree bit for bit.
 */
#ifndef __LINUX_GFP_TYPES_H
#define __LINUX_GFP_TYPES_H

#include <linux/types.h>
#include <hwemu/facts.h>

#endif
