"""Emulation of arch/x86/include/asm/page_types.h and pgtable_64_types.h: page sizes.

The emulated machine has 4 KiB pages and 2 MiB PMDs on every architecture.
"""
PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = ~(PAGE_SIZE - 1)
PMD_SIZE = 2 << 20
