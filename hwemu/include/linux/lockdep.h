/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/lockdep.h without CONFIG_LOCKDEP: the annotations do nothing. */
#ifndef __LINUX_LOCKDEP_H
#define __LINUX_LOCKDEP_H

struct lock_class_key { };

#define lockdep_assert_held(l)		do { (void)(l); } while (0)
#define lockdep_assert_held_write(l)	do { (void)(l); } while (0)
#define lockdep_assert_held_read(l)	do { (void)(l); } while (0)
#define lockdep_assert_not_held(l)	do { (void)(l); } while (0)
#define lockdep_assert_irqs_enabled()	do { } while (0)
#define lockdep_assert_irqs_disabled()	do { } while (0)
#define lockdep_set_class(lock, key)	do { (void)(key); } while (0)
#define lockdep_set_novalidate_class(lock) do { } while (0)
#define lockdep_off()			do { } while (0)
#define lockdep_on()			do { } while (0)

#endif
