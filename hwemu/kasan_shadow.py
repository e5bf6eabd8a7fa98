"""Emulation of mm/kasan/kasan.h (generic mode): the shadow encoding.

One shadow byte per ``KASAN_GRANULE_SIZE`` bytes of memory: 0 means the whole granule
is accessible, 1..7 its first k bytes, and the values below say why it is poisoned.
Facts with no machine, below the layers that lay out the shadow (machine, vmem) or
write it (the page allocator) as well as KASAN's (hwemu/kasan/).
"""
KASAN_SHADOW_SCALE_SHIFT = 3
KASAN_GRANULE_SIZE = 1 << KASAN_SHADOW_SCALE_SHIFT
KASAN_GRANULE_MASK = KASAN_GRANULE_SIZE - 1

# mm/kasan/kasan.h, generic mode
KASAN_PAGE_FREE = 0xFF
KASAN_PAGE_REDZONE = 0xFE
KASAN_SLAB_REDZONE = 0xFC
KASAN_SLAB_FREE = 0xFB
KASAN_SLAB_FREE_META = 0xFA
KASAN_GLOBAL_REDZONE = 0xF9
KASAN_VMALLOC_INVALID = 0xF8

KASAN_REPORT_ACCESS, KASAN_REPORT_INVALID_FREE, KASAN_REPORT_DOUBLE_FREE = range(3)
