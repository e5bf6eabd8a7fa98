"""Emulation of include/linux/gfp_types.h and the flag helpers of include/linux/gfp.h.

Every ``__GFP_*`` flag and ``GFP_*`` combination with the values of the newest
kernels (bits numbered by the ``enum { ___GFP_*_BIT }`` of 6.9+), resolved for the
emulated config: no ``CONFIG_KASAN_HW_TAGS`` (``__GFP_SKIP_ZERO``/``__GFP_SKIP_KASAN``
are 0), no ``CONFIG_LOCKDEP`` (``__GFP_NOLOCKDEP`` is 0), ``CONFIG_SLAB_OBJ_EXT``
(``__GFP_NO_OBJ_EXT`` is bit 24), so ``__GFP_BITS_SHIFT`` is 25.

One table, :data:`GFP_TABLE`, holds every (name, value) pair in the kernel's ``%pGg``
print order (``__def_gfpflag_names`` of include/trace/events/mmflags.h); the module
constants, the unmangled :class:`gfp_t` aliases, :func:`format_gfp` and
:func:`parse_gfp` are all generated from it.

Names that begin with ``__`` are mangled inside class bodies: code in a class uses
``gfp_t.ZERO`` for ``__GFP_ZERO``, ``gfp_t.KERNEL`` for ``GFP_KERNEL``.

The zone enum is hwemu's fixed one (all five zones on every machine), so
:func:`gfp_zone` never folds an unconfigured zone into ``ZONE_NORMAL`` as the kernel's
``OPT_ZONE_*`` do; an unconfigured zone is simply empty. Not emulated:
``gfp_migratetype``, ``gfp_zonelist``, ``gfp_nested_mask``, ``gfp_allowed_mask``
(nothing here is boot-state dependent), the configs this module is not built for.
"""
from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING

from .mmzone import ZONE_DMA, ZONE_DMA32, ZONE_HIGHMEM, ZONE_MOVABLE, ZONE_NORMAL

# The Kconfig this module is "compiled" for (see the module docstring).
CONFIG_KASAN_HW_TAGS = False
CONFIG_LOCKDEP = False
CONFIG_SLAB_OBJ_EXT = True

# enum { ___GFP_*_BIT } of gfp_types.h, in order; None is ___GFP_UNUSED_BIT (0x200,
# ___GFP_ATOMIC until 6.3). Its order is also the order mmflags.h's TRACE_GFP_FLAGS
# prints single flags in.
_GFP_BIT_NAMES = (
    "DMA", "HIGHMEM", "DMA32", "MOVABLE", "RECLAIMABLE", "HIGH", "IO", "FS", "ZERO",
    None, "DIRECT_RECLAIM", "KSWAPD_RECLAIM", "WRITE", "NOWARN", "RETRY_MAYFAIL",
    "NOFAIL", "NORETRY", "MEMALLOC", "COMP", "NOMEMALLOC", "HARDWALL", "THISNODE",
    "ACCOUNT", "ZEROTAGS",
    *(("SKIP_ZERO", "SKIP_KASAN") if CONFIG_KASAN_HW_TAGS else ()),
    *(("NOLOCKDEP",) if CONFIG_LOCKDEP else ()),
    *(("NO_OBJ_EXT",) if CONFIG_SLAB_OBJ_EXT else ()),
)
# Flags whose bit exists only under a config option: 0 when it is off.
_GFP_CONDITIONAL = ("SKIP_ZERO", "SKIP_KASAN", "NOLOCKDEP", "NO_OBJ_EXT")


def _build_table() -> tuple[tuple[str, int], ...]:
    f = {name: 1 << bit for bit, name in enumerate(_GFP_BIT_NAMES) if name}
    f.update({name: 0 for name in _GFP_CONDITIONAL if name not in f})
    reclaim = f["DIRECT_RECLAIM"] | f["KSWAPD_RECLAIM"]
    user = reclaim | f["IO"] | f["FS"] | f["HARDWALL"]
    highuser_movable = user | f["HIGHMEM"] | f["MOVABLE"] | f["SKIP_KASAN"]
    transhuge_light = ((highuser_movable | f["COMP"] | f["NOMEMALLOC"] | f["NOWARN"])
                       & ~reclaim)
    kernel = reclaim | f["IO"] | f["FS"]
    # __def_gfpflag_names: most bits first, then each bit of TRACE_GFP_FLAGS.
    composites = (
        ("GFP_TRANSHUGE", transhuge_light | f["DIRECT_RECLAIM"]),
        ("GFP_TRANSHUGE_LIGHT", transhuge_light),
        ("GFP_HIGHUSER_MOVABLE", highuser_movable),
        ("GFP_HIGHUSER", user | f["HIGHMEM"]),
        ("GFP_USER", user),
        ("GFP_KERNEL_ACCOUNT", kernel | f["ACCOUNT"]),
        ("GFP_KERNEL", kernel),
        ("GFP_NOFS", reclaim | f["IO"]),
        ("GFP_ATOMIC", f["HIGH"] | f["KSWAPD_RECLAIM"]),
        ("GFP_NOIO", reclaim),
        ("GFP_NOWAIT", f["KSWAPD_RECLAIM"] | f["NOWARN"]),
        ("GFP_DMA", f["DMA"]),
        ("GFP_DMA32", f["DMA32"]),
        ("__GFP_RECLAIM", reclaim),
    )
    singles = tuple(("__GFP_" + name, f[name]) for name in _GFP_BIT_NAMES if name)
    # Configured-out flags (value 0) last: defined and parsed, never printed.
    absent = tuple(("__GFP_" + name, 0) for name in _GFP_CONDITIONAL if not f[name])
    return composites + singles + absent


#: Every GFP name of this config as ``(name, value)``, in ``%pGg`` print order.
GFP_TABLE: tuple[tuple[str, int], ...] = _build_table()
_GFP_BY_NAME: dict[str, int] = dict(GFP_TABLE)

globals().update(_GFP_BY_NAME)


def __getattr__(name: str) -> int:
    """Reached only for a name that is no GFP constant (they are module globals, set
    from :data:`GFP_TABLE` above); typed so that checkers know the generated names are
    ints."""
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__GFP_BITS_SHIFT = len(_GFP_BIT_NAMES)   # ___GFP_LAST_BIT
__GFP_BITS_MASK = (1 << __GFP_BITS_SHIFT) - 1
GFP_ZONEMASK = (_GFP_BY_NAME["__GFP_DMA"] | _GFP_BY_NAME["__GFP_HIGHMEM"]
                | _GFP_BY_NAME["__GFP_DMA32"] | _GFP_BY_NAME["__GFP_MOVABLE"])
#: mm/internal.h: not for slab allocators. gfp_t is a 32-bit ``unsigned int``.
GFP_SLAB_BUG_MASK = ((_GFP_BY_NAME["__GFP_DMA32"] | _GFP_BY_NAME["__GFP_HIGHMEM"]
                      | ~__GFP_BITS_MASK) & 0xFFFFFFFF)

#: lib/vsprintf.c's table for ``%pGg`` (``gfpflag_names`` of mm/debug.c): the
#: ``struct trace_print_flags`` ``{mask, name}`` pairs, configured-out flags left out.
gfpflag_names: tuple[tuple[int, str], ...] = tuple(
    (value, name) for name, value in GFP_TABLE if value)


if TYPE_CHECKING:
    class _GfpNamespace(type):
        def __getattr__(cls, name: str) -> int: ...   # the aliases set below
else:
    _GfpNamespace = type


class gfp_t(metaclass=_GfpNamespace):
    """Unmangled aliases of the GFP names, for code inside class bodies.

    ``gfp_t.X`` is ``__GFP_X`` for a single flag and ``GFP_X`` for a combination
    (``gfp_t.ZERO == __GFP_ZERO``, ``gfp_t.KERNEL == GFP_KERNEL``; ``gfp_t.DMA`` is both
    ``__GFP_DMA`` and ``GFP_DMA``). Also ``BITS_SHIFT``, ``BITS_MASK``, ``ZONEMASK`` and
    ``SLAB_BUG_MASK``. A GFP mask itself is a plain ``int``, as ``gfp_t`` is an
    ``unsigned int`` in C.

    At run time a plain class: its attributes are read on every allocation, and a
    metaclass with a ``__getattr__`` made each read cost ~140 ns instead of ~50 (type
    checkers see one, for the aliases set with ``setattr`` below).
    """

    def __init__(self):
        raise TypeError("gfp_t is a namespace of GFP values; GFP masks are plain ints")


def _alias(name: str) -> str:
    return name.removeprefix("__").removeprefix("GFP_")


for _name, _value in GFP_TABLE:
    setattr(gfp_t, _alias(_name), _value)
for _name, _value in (("__GFP_BITS_SHIFT", __GFP_BITS_SHIFT),
                      ("__GFP_BITS_MASK", __GFP_BITS_MASK),
                      ("GFP_ZONEMASK", GFP_ZONEMASK),
                      ("GFP_SLAB_BUG_MASK", GFP_SLAB_BUG_MASK)):
    setattr(gfp_t, _alias(_name), _value)
del _name, _value

_DIRECT_RECLAIM = gfp_t.DIRECT_RECLAIM


def gfpflags_allow_blocking(gfp_flags: int) -> bool:
    """May an allocation with these flags sleep (enter direct reclaim)?

    :param gfp_flags: ``const gfp_t``
    :return: ``bool`` — ``!!(gfp_flags & __GFP_DIRECT_RECLAIM)``
    """
    return bool(gfp_flags & _DIRECT_RECLAIM)


# --- gfp_zone(): GFP_ZONE_TABLE / GFP_ZONE_BAD of gfp.h, on hwemu's fixed zone enum ---

GFP_ZONES_SHIFT = 3   # ZONES_SHIFT for five zones


def _zone_table_and_bad() -> tuple[int, int]:
    dma, highmem = gfp_t.DMA, gfp_t.HIGHMEM
    dma32, movable = gfp_t.DMA32, gfp_t.MOVABLE
    valid = {0: ZONE_NORMAL, dma: ZONE_DMA, highmem: ZONE_HIGHMEM, dma32: ZONE_DMA32,
             movable: ZONE_NORMAL, movable | dma: ZONE_DMA,
             movable | highmem: ZONE_MOVABLE, movable | dma32: ZONE_DMA32}
    table = bad = 0
    for bits in range(GFP_ZONEMASK + 1):
        if bits in valid:
            table |= valid[bits] << (bits * GFP_ZONES_SHIFT)
        else:
            bad |= 1 << bits
    return table, bad


#: ``16 * GFP_ZONES_SHIFT``-bit table: the zone for each value of ``gfp & GFP_ZONEMASK``.
#: ``GFP_ZONE_BAD``: one bit per combination that is not allowed (more than one of
#: DMA, DMA32, HIGHMEM), as in the kernel.
GFP_ZONE_TABLE, GFP_ZONE_BAD = _zone_table_and_bad()
_ZONE_ENTRY_MASK = (1 << GFP_ZONES_SHIFT) - 1


def gfp_zone(flags: int) -> int:
    """The highest zone an allocation with ``flags`` may use.

    No zone modifier gives ``ZONE_NORMAL``; ``__GFP_DMA``/``__GFP_DMA32``/
    ``__GFP_HIGHMEM`` give their zone; ``__GFP_MOVABLE`` alone gives ``ZONE_NORMAL``,
    with ``__GFP_HIGHMEM`` ``ZONE_MOVABLE``, with DMA or DMA32 that zone.

    :param flags: ``gfp_t``
    :return: ``enum zone_type``
    :raises ValueError: for a combination in ``GFP_ZONE_BAD`` (the kernel's
        ``VM_BUG_ON``).
    """
    bit = flags & GFP_ZONEMASK
    if (GFP_ZONE_BAD >> bit) & 1:
        raise ValueError(
            f"gfp_zone({format_gfp(flags)}): invalid combination of zone modifiers "
            f"{format_flags(bit, gfpflag_names)} (GFP_ZONE_BAD); set at most one of "
            "__GFP_DMA, __GFP_DMA32 and __GFP_HIGHMEM (__GFP_MOVABLE goes with any)")
    return (GFP_ZONE_TABLE >> (bit * GFP_ZONES_SHIFT)) & _ZONE_ENTRY_MASK


# --- printing: lib/vsprintf.c format_flags() with gfpflag_names, i.e. "%#x(%pGg)" ---

_GFP_T_MAX = 0xFFFFFFFF


def format_flags(flags: int, names) -> str:
    """lib/vsprintf.c ``format_flags()``: the names of ``flags`` joined by ``|``.

    Walks ``names`` in order; every entry whose bits are all still set is printed and
    its bits cleared. Bits left over are printed as one ``0x...`` number; no flags
    print as the empty string.

    :param flags: ``unsigned long``
    :param names: ``const struct trace_print_flags *`` — ``(mask, name)`` pairs
    """
    out = []
    for mask, name in names:
        if not flags:
            break
        if flags & mask == mask:
            out.append(name)
            flags &= ~mask
    if flags:
        out.append(f"{flags:#x}")
    return "|".join(out)


def format_gfp(gfp: int) -> str:
    """A GFP mask as the kernel prints it with ``"%#x(%pGg)"``.

    ``0x92cc0(GFP_KERNEL|__GFP_NOWARN|__GFP_NORETRY|__GFP_NOMEMALLOC)``; ``0x0()`` for
    no flags; bits without a name (0x200, bits above ``__GFP_BITS_MASK``) as a
    trailing ``|0x...``.

    :param gfp: ``gfp_t``
    :raises ValueError: if ``gfp`` does not fit a 32-bit ``gfp_t``.
    """
    if not isinstance(gfp, int) or isinstance(gfp, bool) or not 0 <= gfp <= _GFP_T_MAX:
        raise ValueError(f"format_gfp({gfp!r}): a gfp_t is an int in 0..{_GFP_T_MAX:#x}")
    return f"{gfp:#x}({format_flags(gfp, gfpflag_names)})"


# --- parsing (YAML configs, CLI) ---

_PRINTED = re.compile(r"(?P<num>0[xX][0-9a-fA-F]+|\d+)\s*\((?P<names>[^()]*)\)")


def _suggest(token: str) -> str:
    upper = token.upper()
    found = [name for name in (upper, "GFP_" + upper, "__GFP_" + upper,
                               "__GFP_" + upper.removeprefix("GFP_"),
                               "GFP_" + upper.removeprefix("__GFP_"))
             if name in _GFP_BY_NAME]
    if not found:   # a misspelling rather than a missing prefix or wrong case
        found = difflib.get_close_matches(upper, _GFP_BY_NAME, n=2, cutoff=0.6)
    found = list(dict.fromkeys(found))
    return f"; did you mean {' or '.join(found)}?" if found else ""


def _parse_expr(expr: str, whole: str) -> int:
    value = 0
    for token in (t.strip() for t in expr.split("|")):
        if not token:
            raise ValueError(f"parse_gfp({whole!r}): empty flag name between '|'")
        if token in _GFP_BY_NAME:
            value |= _GFP_BY_NAME[token]
        elif token[0].isdigit():
            try:
                value |= int(token, 0)
            except ValueError:
                raise ValueError(f"parse_gfp({whole!r}): {token!r} is not a number "
                                 "(use 0x... for hex)") from None
        else:
            raise ValueError(f"parse_gfp({whole!r}): unknown GFP flag {token!r}"
                             + _suggest(token))
    return value


def _check_range(value: int, whole) -> int:
    if value < 0:
        raise ValueError(f"parse_gfp({whole!r}): a gfp mask cannot be negative")
    if value & ~__GFP_BITS_MASK:
        raise ValueError(
            f"parse_gfp({whole!r}): {value:#x} has bits outside __GFP_BITS_MASK "
            f"({__GFP_BITS_MASK:#x}): {value & ~__GFP_BITS_MASK:#x}")
    return value


def parse_gfp(value) -> int:
    """A GFP mask from a config file or the command line.

    Accepts an ``int``; a hex or decimal string (``"0xcc0"``, ``"3264"``); names and
    numbers joined by ``|`` with optional spaces (``"GFP_KERNEL | __GFP_ZERO"``); the
    printed form of :func:`format_gfp` (``"0x92cc0(GFP_KERNEL|__GFP_NOWARN|...)"``),
    where the number is the value and the names must agree with it; or a list of any
    of these, OR-ed together.

    :return: ``gfp_t``
    :raises ValueError: unknown name (with a suggestion), names that disagree with
        the number, bits outside ``__GFP_BITS_MASK``.
    :raises TypeError: anything that is not an int, a string or a list of them.
    """
    if isinstance(value, bool):
        raise TypeError(f"parse_gfp({value!r}): a gfp mask is an int or a string, "
                        "not a bool")
    if isinstance(value, int):
        return _check_range(value, value)
    if isinstance(value, (list, tuple)):
        result = 0
        for item in value:
            result |= parse_gfp(item)
        return result
    if not isinstance(value, str):
        raise TypeError(f"parse_gfp({value!r}): a gfp mask is an int or a string, "
                        f"not {type(value).__name__}")
    text = value.strip()
    if not text:
        raise ValueError(f"parse_gfp({value!r}): empty gfp mask (write 0 for none)")
    printed = _PRINTED.fullmatch(text)
    if printed:
        number = _check_range(int(printed["num"], 0), value)
        names = printed["names"].strip()
        named = _parse_expr(names, value) if names else 0
        if named != number:
            raise ValueError(
                f"parse_gfp({value!r}): the names give {format_gfp(named)}, which "
                f"disagrees with the number {format_gfp(number)}")
        return number
    return _check_range(_parse_expr(text, value), value)


__all__ = [name for name, _ in GFP_TABLE] + [
    "__GFP_BITS_SHIFT", "__GFP_BITS_MASK", "GFP_ZONEMASK", "GFP_SLAB_BUG_MASK",
    "GFP_ZONES_SHIFT", "GFP_ZONE_TABLE", "GFP_ZONE_BAD", "GFP_TABLE", "gfpflag_names",
    "gfp_t", "gfpflags_allow_blocking", "gfp_zone", "format_flags", "format_gfp",
    "parse_gfp",
]
