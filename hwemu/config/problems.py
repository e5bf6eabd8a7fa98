"""Config problems and how pydantic's errors become them.

Every problem is a :class:`Problem` at ``file:LINE: dotted.key: message``;
:class:`ConfigError` carries all of them at once. :class:`_Origins` remembers where
each key was written (a line of a file, or ``--set``) so that a pydantic error, which
knows only the key path, can be placed. Messages are pydantic's, minus the Python
types a YAML author never wrote, plus a "did you mean" for unknown keys; the models'
cross-field checks arrive as one error each (:func:`~hwemu.config.base._raise_checks`)
and are split here into their own problems.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from .base import _CHECKS_ERROR, Loc, _dotted, _inner_model
from .schema import REMOVED_KEYS, Config


@dataclasses.dataclass(frozen=True)
class Problem:
    """One configuration problem, tied to a file, line and dotted key."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {_shown(self.key)}: {_shown(self.message)}"


# Longer keys and messages (a pasted blob as a key) are cut to this many characters.
MAX_SHOWN = 500


def _shown(text: str) -> str:
    """``text`` on one line of readable length: control characters escaped (a key may
    hold a newline), the middle of a very long text left out."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                       for c in text)
    if len(text) > MAX_SHOWN:
        cut = len(text) - MAX_SHOWN
        text = f"{text[:MAX_SHOWN // 2]}...({cut} characters)...{text[-MAX_SHOWN // 2:]}"
    return text


class ConfigError(Exception):
    """Every problem found while loading a config; ``str()`` gives one per line."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(map(str, self.problems)))


# ---------------------------------------------------------------------------
# Where each key came from
# ---------------------------------------------------------------------------


class _Origins:
    """Maps key paths to the (file, line) they were written at."""

    def __init__(self, file: str, lines: dict[Loc, int] | None = None):
        self.file = file
        self.where: dict[Loc, tuple[str, int | None]] = {
            loc: (file, line) for loc, line in (lines or {}).items()
        }

    def replace(self, loc: Loc, file: str) -> None:
        """Record that ``loc`` and everything under it now come from ``file``."""
        for known in [k for k in self.where if k[: len(loc)] == loc]:
            del self.where[known]
        self.where[loc] = (file, None)

    def problem(self, loc: Loc, message: str) -> Problem:
        """Build a Problem located at the longest known prefix of ``loc``."""
        for n in range(len(loc), 0, -1):
            if loc[:n] in self.where:
                file, line = self.where[loc[:n]]
                return Problem(file, line, _dotted(loc), message)
        return Problem(self.file, None, _dotted(loc), message)


# ---------------------------------------------------------------------------
# pydantic errors
# ---------------------------------------------------------------------------


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """Find the model class that validates the mapping at ``loc``."""
    model: type[BaseModel] | None = Config
    for part in loc:
        if isinstance(part, int):
            continue  # list index: the element type is already the target
        field = model.model_fields.get(part) if model else None
        model = _inner_model(field.annotation) if field else None
    return model


# pydantic messages that mention Python types a YAML author never wrote.
_REWORDED = {
    "tuple_type": "Input should be a list",
    "model_type": "Input should be a mapping",
    "model_attributes_type": "Input should be a mapping",
}


def _message(error: Mapping[str, Any]) -> str:
    """A short human message for one pydantic error."""
    if error["type"] == "extra_forbidden":
        if tuple(error["loc"]) in REMOVED_KEYS:
            return REMOVED_KEYS[tuple(error["loc"])]
        key = str(error["loc"][-1])
        model = _model_at(tuple(error["loc"][:-1]))
        names = list(model.model_fields) if model else []
        close = difflib.get_close_matches(key, names, n=1)
        if close:
            return f"unknown key '{key}'; did you mean '{close[0]}'?"
        return f"unknown key '{key}'; valid keys: {', '.join(names)}"
    if error["type"] in _REWORDED:
        return _REWORDED[error["type"]]
    return error["msg"].removeprefix("Value error, ")


def _validation_problems(exc: ValidationError, origins: _Origins) -> list[Problem]:
    """Render a pydantic ValidationError as located Problems."""
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        if error["type"] == _CHECKS_ERROR:
            for sub, message in error["ctx"]["problems"]:
                problems.append(origins.problem(loc + tuple(sub), message))
        else:
            problems.append(origins.problem(loc, _message(error)))
    return problems


def _hidden_problems(data: dict[str, Any], exc: ValidationError,
                     origins: _Origins) -> list[Problem]:
    """Cross-field problems that field errors kept from running.

    The model checks run only once every field parsed, so an unknown key would hide
    an overlap of nodes. Drop the keys that failed and validate again, keeping only
    the cross-field problems of that second pass.
    """
    data = copy.deepcopy(data)
    pruned = False
    for error in exc.errors(include_url=False):
        *parents, last = error["loc"] or ("",)
        node: Any = data
        for step in parents:
            node = node[step] if type(node) in (dict, list) else None
        if error["type"] != _CHECKS_ERROR and isinstance(node, dict) and last in node:
            del node[last]
            pruned = True
    if not pruned:
        return []
    try:
        Config.model_validate(data)
    except ValidationError as second:
        return [origins.problem(tuple(e["loc"]) + tuple(sub), message)
                for e in second.errors(include_url=False) if e["type"] == _CHECKS_ERROR
                for sub, message in e["ctx"]["problems"]]
    return []
