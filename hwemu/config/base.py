"""What every part of the config schema shares.

The models' settings (unknown keys are errors, configs are frozen), byte sizes as
YAML authors write them (``896M``, ``0x1000``), and the hand-over of a model's
cross-field problems to the renderer in :mod:`hwemu.config.problems`: a model check
collects ``(location, message)`` pairs and :func:`_raise_checks` raises them as one
pydantic error that the renderer splits again.
"""

from __future__ import annotations

import re
import typing
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, WithJsonSchema
from pydantic_core import PydanticCustomError

K, M, G = 1 << 10, 1 << 20, 1 << 30

_MODEL_CONFIG = ConfigDict(extra="forbid", frozen=True)

# ---------------------------------------------------------------------------
# Sizes
# ---------------------------------------------------------------------------

_SIZE_RE = re.compile(
    r"(?P<hex>0x[0-9a-f_]+)|(?P<num>[0-9_]+)\s*(?:(?P<unit>[kmgt])(?:i?b)?|b)?",
    re.IGNORECASE | re.ASCII,
)
_FRACTION_RE = re.compile(r"[0-9]*\.[0-9]+\s*(?:[kmgt](?:i?b)?|b)?", re.I | re.A)
_UNIT_SHIFT = {"k": 10, "m": 20, "g": 30, "t": 40}
# Sizes are u64 byte counts; a longer number is refused before it is converted, since
# converting a string of thousands of digits is slow (and refused by Python).
SIZE_MAX = (1 << 64) - 1
_SIZE_DIGITS = len(str(SIZE_MAX)) + 8   # room for underscores and leading zeroes


def parse_size(value: object) -> int:
    """Return a byte count from an int >= 0 or a string like ``896M``/``0x1000``.

    Suffixes K, M, G, T (optionally followed by ``B`` or ``iB``) are binary and
    case-insensitive; a bare ``B`` means bytes.  Hex takes no suffix, because
    ``0x1B`` would be ambiguous.  Raises ``ValueError`` otherwise.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return _size_in_range(value)
    if isinstance(value, str):
        text = value.strip()
        if len(text) > _SIZE_DIGITS and _SIZE_RE.fullmatch(text):
            raise ValueError(f"a number of {len(text)} characters is too large; "
                             f"sizes are at most {SIZE_MAX:#x} (16 EiB, 64 bits)")
        if _FRACTION_RE.fullmatch(text):
            raise ValueError(
                f"invalid size '{value}': fractional sizes are not supported; "
                "use a smaller unit, e.g. 1536M rather than 1.5G"
            )
        match = _SIZE_RE.fullmatch(text)
        n = None
        if match:
            try:
                if match["hex"]:
                    n = int(match["hex"], 16)
                else:
                    shift = _UNIT_SHIFT.get((match["unit"] or "").lower(), 0)
                    n = int(match["num"], 10) << shift
            except ValueError:
                pass  # misplaced underscores, e.g. "1__0"
        if n is not None:
            return _size_in_range(n)
    raise ValueError(
        f"invalid size '{value}': expected bytes as an integer or with a "
        "K/M/G/T suffix, e.g. 896M or 0x1000"
    )


def _size_in_range(n: int) -> int:
    """``n`` if it fits in 64 bits, as every size of the machine must."""
    if n > SIZE_MAX:
        shown = format_size(n) if n.bit_length() <= 128 else f"a {n.bit_length()}-bit number"
        raise ValueError(f"{shown} is too large; sizes are at most {SIZE_MAX:#x} "
                         "(16 EiB, 64 bits)")
    return n


def format_size(n: int) -> str:
    """Format a byte count with the largest binary unit that divides it exactly."""
    for suffix, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if n and n % (1 << shift) == 0:
            return f"{n >> shift}{suffix}"
    return str(n)


# A byte count written as an int or a size string (see parse_size); the
# JSON schema says so too, since the config reference is generated from it.
Size = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]}),
]


# ---------------------------------------------------------------------------
# Cross-field problems
# ---------------------------------------------------------------------------

Loc = tuple[str | int, ...]

# Error type used by the models' after-validators to hand several problems,
# each with its own sub-location, to the renderer in one pydantic error.
_CHECKS_ERROR = "hwemu_checks"


def _dotted(loc: Loc) -> str:
    """Render a location tuple as the dotted key users see."""
    return ".".join(map(str, loc)) if loc else "(top level)"


def _raise_checks(problems: list[tuple[Loc, str]]) -> None:
    """Raise all cross-field problems of one model as a single pydantic error."""
    if problems:
        summary = "; ".join(f"{_dotted(loc)}: {msg}" for loc, msg in problems)
        raise PydanticCustomError(
            _CHECKS_ERROR, "{summary}", {"summary": summary, "problems": problems}
        )


# ---------------------------------------------------------------------------
# Walking the models
# ---------------------------------------------------------------------------


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel inside an annotation such as ``tuple[NodeConfig, ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if found := _inner_model(arg):
            return found
    return None
