"""GFP flags: values, zone selection, %pGg printing and parsing.

Every expected number and string below is written out by hand from the kernel
(include/linux/gfp_types.h with the enum bit layout, gfp.h's GFP_ZONE_TABLE /
GFP_ZONE_BAD, mmflags.h's __def_gfpflag_names, vsprintf.c's format_flags), for the
emulated config: no KASAN_HW_TAGS, no LOCKDEP, SLAB_OBJ_EXT on.
"""
import random

import pytest

import hwemu.gfp as gfp
from hwemu.gfp import format_gfp, gfp_t, gfp_zone, gfpflags_allow_blocking, parse_gfp
from hwemu.mmzone import ZONE_DMA, ZONE_DMA32, ZONE_HIGHMEM, ZONE_MOVABLE, ZONE_NORMAL

FLAGS = {
    "__GFP_DMA": 0x1, "__GFP_HIGHMEM": 0x2, "__GFP_DMA32": 0x4, "__GFP_MOVABLE": 0x8,
    "__GFP_RECLAIMABLE": 0x10, "__GFP_HIGH": 0x20, "__GFP_IO": 0x40, "__GFP_FS": 0x80,
    "__GFP_ZERO": 0x100, "__GFP_DIRECT_RECLAIM": 0x400, "__GFP_KSWAPD_RECLAIM": 0x800,
    "__GFP_WRITE": 0x1000, "__GFP_NOWARN": 0x2000, "__GFP_RETRY_MAYFAIL": 0x4000,
    "__GFP_NOFAIL": 0x8000, "__GFP_NORETRY": 0x10000, "__GFP_MEMALLOC": 0x20000,
    "__GFP_COMP": 0x40000, "__GFP_NOMEMALLOC": 0x80000, "__GFP_HARDWALL": 0x100000,
    "__GFP_THISNODE": 0x200000, "__GFP_ACCOUNT": 0x400000, "__GFP_ZEROTAGS": 0x800000,
    # config-dependent
    "__GFP_SKIP_ZERO": 0, "__GFP_SKIP_KASAN": 0, "__GFP_NOLOCKDEP": 0,
    "__GFP_NO_OBJ_EXT": 0x1000000,
}
COMPOSITES = {
    "__GFP_RECLAIM": 0xc00, "GFP_ATOMIC": 0x820, "GFP_KERNEL": 0xcc0,
    "GFP_KERNEL_ACCOUNT": 0x400cc0, "GFP_NOWAIT": 0x2800, "GFP_NOIO": 0xc00,
    "GFP_NOFS": 0xc40, "GFP_USER": 0x100cc0, "GFP_DMA": 0x1, "GFP_DMA32": 0x4,
    "GFP_HIGHUSER": 0x100cc2, "GFP_HIGHUSER_MOVABLE": 0x100cca,
    "GFP_TRANSHUGE_LIGHT": 0x1c20ca, "GFP_TRANSHUGE": 0x1c24ca,
}


@pytest.mark.parametrize("name,value", sorted({**FLAGS, **COMPOSITES}.items()))
def test_values(name, value):
    assert getattr(gfp, name) == value


def test_masks():
    assert gfp.__GFP_BITS_SHIFT == 25
    assert gfp.__GFP_BITS_MASK == 0x1ffffff
    assert gfp.GFP_ZONEMASK == 0xf
    assert gfp.GFP_SLAB_BUG_MASK == 0xfe000006


def test_table_covers_every_flag_once():
    names = [name for name, _ in gfp.GFP_TABLE]
    assert len(names) == len(set(names))
    assert set(names) == set(FLAGS) | set(COMPOSITES)
    # the single flags, in bit order, OR together to everything but the unused bit 9
    assert sum(v for n, v in gfp.GFP_TABLE if n.startswith("__GFP_")
               and n != "__GFP_RECLAIM") == 0x1ffffff & ~0x200


@pytest.mark.parametrize("name", sorted({**FLAGS, **COMPOSITES}))
def test_gfp_t_aliases(name):
    alias = name.removeprefix("__").removeprefix("GFP_")
    assert getattr(gfp_t, alias) == getattr(gfp, name)


def test_gfp_t_named_examples():
    assert (gfp_t.DMA, gfp_t.ZERO, gfp_t.NOWARN) == (0x1, 0x100, 0x2000)
    assert (gfp_t.DIRECT_RECLAIM, gfp_t.RECLAIM) == (0x400, 0xc00)
    assert (gfp_t.KERNEL, gfp_t.ATOMIC, gfp_t.NOWAIT) == (0xcc0, 0x820, 0x2800)
    assert (gfp_t.NOIO, gfp_t.NOFS, gfp_t.HIGHUSER_MOVABLE) == (0xc00, 0xc40, 0x100cca)
    assert (gfp_t.BITS_MASK, gfp_t.ZONEMASK) == (0x1ffffff, 0xf)

    class User:     # the reason gfp_t exists: no name mangling in a class body
        mask = gfp_t.KERNEL | gfp_t.ZERO
    assert User.mask == 0xdc0


def test_allow_blocking():
    assert gfpflags_allow_blocking(0xcc0) is True        # GFP_KERNEL
    assert gfpflags_allow_blocking(0xc00) is True        # GFP_NOIO
    assert gfpflags_allow_blocking(0x820) is False       # GFP_ATOMIC
    assert gfpflags_allow_blocking(0x2800) is False      # GFP_NOWAIT
    assert gfpflags_allow_blocking(0x92880) is False     # mempool's first pass


ZONES = {  # gfp & (DMA|HIGHMEM|DMA32|MOVABLE) -> zone, or None for GFP_ZONE_BAD
    0x0: ZONE_NORMAL, 0x1: ZONE_DMA, 0x2: ZONE_HIGHMEM, 0x3: None,
    0x4: ZONE_DMA32, 0x5: None, 0x6: None, 0x7: None,
    0x8: ZONE_NORMAL, 0x9: ZONE_DMA, 0xa: ZONE_MOVABLE, 0xb: None,
    0xc: ZONE_DMA32, 0xd: None, 0xe: None, 0xf: None,
}


@pytest.mark.parametrize("bits", range(16))
def test_gfp_zone(bits):
    for extra in (0, 0xcc0, 0x92820):       # other flags do not matter
        if ZONES[bits] is None:
            with pytest.raises(ValueError, match=r"GFP_ZONE_BAD") as e:
                gfp_zone(bits | extra)
            assert format_gfp(bits | extra) in str(e.value)
        else:
            assert gfp_zone(bits | extra) == ZONES[bits]


def test_zone_enum_is_fixed():
    assert (ZONE_DMA, ZONE_DMA32, ZONE_NORMAL, ZONE_HIGHMEM, ZONE_MOVABLE) == (0, 1, 2, 3, 4)


PRINTED = {
    # mempool_adjust_gfp() masks (spec §1.3.6)
    0x92cc0: "0x92cc0(GFP_KERNEL|__GFP_NOWARN|__GFP_NORETRY|__GFP_NOMEMALLOC)",
    0x92880: "0x92880(GFP_NOWAIT|__GFP_FS|__GFP_NORETRY|__GFP_NOMEMALLOC)",
    0x92c40: "0x92c40(GFP_NOFS|__GFP_NOWARN|__GFP_NORETRY|__GFP_NOMEMALLOC)",
    0x92c00: "0x92c00(GFP_NOIO|__GFP_NOWARN|__GFP_NORETRY|__GFP_NOMEMALLOC)",
    0x92800: "0x92800(GFP_NOWAIT|__GFP_NORETRY|__GFP_NOMEMALLOC)",
    0x92c02: "0x92c02(GFP_NOIO|__GFP_HIGHMEM|__GFP_NOWARN|__GFP_NORETRY|"
             "__GFP_NOMEMALLOC)",
    0x92802: "0x92802(GFP_NOWAIT|__GFP_HIGHMEM|__GFP_NORETRY|__GFP_NOMEMALLOC)",
    0x92820: "0x92820(GFP_ATOMIC|__GFP_NOWARN|__GFP_NORETRY|__GFP_NOMEMALLOC)",
    # a real report line
    0xd2800: "0xd2800(GFP_NOWAIT|__GFP_NORETRY|__GFP_COMP|__GFP_NOMEMALLOC)",
    # others
    0x0: "0x0()",
    0xcc0: "0xcc0(GFP_KERNEL)",
    0x100cca: "0x100cca(GFP_HIGHUSER_MOVABLE)",
    0x1c24ca: "0x1c24ca(GFP_TRANSHUGE)",
    0x140cca: "0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP)",
    0x400dc0: "0x400dc0(GFP_KERNEL_ACCOUNT|__GFP_ZERO)",
    0x821: "0x821(GFP_ATOMIC|GFP_DMA)",              # lib/tests/printf_kunit.c
    0x20: "0x20(__GFP_HIGH)",
    0x2dc0: "0x2dc0(GFP_KERNEL|__GFP_ZERO|__GFP_NOWARN)",   # bit order since 6.15
    0xc20: "0xc20(GFP_ATOMIC|__GFP_DIRECT_RECLAIM)",
    0xc08: "0xc08(GFP_NOIO|__GFP_MOVABLE)",
    0xc01: "0xc01(GFP_NOIO|GFP_DMA)",
    0x400: "0x400(__GFP_DIRECT_RECLAIM)",
    0x1000cc0: "0x1000cc0(GFP_KERNEL|__GFP_NO_OBJ_EXT)",
    0x200: "0x200(0x200)",                           # the unused bit has no name
    0x4000cc0: "0x4000cc0(GFP_KERNEL|0x4000000)",    # above __GFP_BITS_MASK
    0xfe000000: "0xfe000000(0xfe000000)",
}


@pytest.mark.parametrize("mask", PRINTED)
def test_format_gfp(mask):
    assert format_gfp(mask) == PRINTED[mask]


@pytest.mark.parametrize("bad", [-1, 1 << 32, 1.0, "0xcc0", True])
def test_format_gfp_rejects_non_gfp_t(bad):
    with pytest.raises(ValueError):
        format_gfp(bad)


@pytest.mark.parametrize("text,value", [
    (0xcc0, 0xcc0), ("0xcc0", 0xcc0), ("3264", 0xcc0), ("  0XCC0 ", 0xcc0),
    ("GFP_KERNEL", 0xcc0), ("GFP_KERNEL | __GFP_ZERO", 0xdc0),
    ("GFP_KERNEL|__GFP_ZERO|__GFP_NOWARN", 0x2dc0), ("GFP_NOIO|0x200", 0xe00),
    ("__GFP_SKIP_KASAN", 0), ("GFP_HIGHUSER_MOVABLE|__GFP_SKIP_KASAN", 0x100cca),
    ("0", 0), ("0x0()", 0), ("0x200(0x200)", 0x200),
    ("0x92cc0(GFP_KERNEL|__GFP_NOWARN|__GFP_NORETRY|__GFP_NOMEMALLOC)", 0x92cc0),
    ("0x92cc0( GFP_KERNEL | __GFP_NORETRY|__GFP_NOWARN|__GFP_NOMEMALLOC )", 0x92cc0),
    (["GFP_KERNEL", "__GFP_ZERO", 0x2000], 0x2dc0),
])
def test_parse_gfp(text, value):
    assert parse_gfp(text) == value


def test_parse_round_trips_format():
    rng = random.Random(20240611)
    named = [v for _, v in gfp.GFP_TABLE if v]
    masks = list(PRINTED) + [sum(1 << b for b in range(25) if b != 9)]
    for _ in range(2000):
        m = 0
        for v in rng.sample(named, rng.randint(0, 6)):
            m |= v
        masks.append(m | rng.getrandbits(25) * (rng.random() < 0.2))
    for mask in masks:
        if mask & ~0x1ffffff:
            continue
        text = format_gfp(mask)
        assert parse_gfp(text) == mask, text
        assert parse_gfp(text[text.index("(") + 1:-1] or "0") == mask, text
        assert parse_gfp(hex(mask)) == mask


@pytest.mark.parametrize("text,message", [
    ("GFP_KERNAL", r"unknown GFP flag 'GFP_KERNAL'; did you mean GFP_KERNEL\b"),
    ("GFP_KERNEL|__GFP_ZER0", r"'__GFP_ZER0'; did you mean __GFP_ZERO\b"),
    ("gfp_kernel", r"did you mean GFP_KERNEL\?"),
    ("KERNEL", r"did you mean GFP_KERNEL\?"),
    ("GFP_ZERO", r"did you mean __GFP_ZERO\?"),
    ("__GFP_ATOMIC", r"unknown GFP flag '__GFP_ATOMIC'"),    # gone since 6.3
    ("GFP_KERNEL||__GFP_ZERO", r"empty flag name"),
    ("GFP_KERNEL|", r"empty flag name"),
    ("", r"empty gfp mask"),
    ("0xzz", r"not a number"),
    ("0x92cc0(GFP_KERNEL)", r"names give 0xcc0\(GFP_KERNEL\).*disagrees.*0x92cc0"),
    ("0xcc0(GFP_KERNEL|__GFP_ZERO)", r"disagrees"),
    ("0x2000000", r"outside __GFP_BITS_MASK \(0x1ffffff\): 0x2000000"),
    (0x4000cc0, r"outside __GFP_BITS_MASK \(0x1ffffff\): 0x4000000"),
    ("GFP_KERNEL|0x80000000", r"outside __GFP_BITS_MASK"),
    ("0x4000cc0(GFP_KERNEL|0x4000000)", r"outside __GFP_BITS_MASK"),
    (-1, r"negative"),
])
def test_parse_gfp_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_gfp(text)


@pytest.mark.parametrize("bad", [None, 1.5, True, {"GFP_KERNEL": 1}])
def test_parse_gfp_type_errors(bad):
    with pytest.raises(TypeError):
        parse_gfp(bad)
