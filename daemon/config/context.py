"""What the config loader's steps share: located problems, env secrets, model validation.

``Ctx`` collects every problem found (located at ``file:line:column`` when the config came from
a file, with a dotted key path such as ``feeds[2].url``) and remembers which locations hold
values taken from the environment, so a problem there never shows them. ``validate`` runs one
pydantic model and files its errors as problems instead of raising.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from daemon.config import yamlfile as _yaml
from daemon.config.messages import message_for, redact, unknown_key
from daemon.errors import Problem

Loc = tuple[str | int, ...]

M = TypeVar("M", bound=BaseModel)


@dataclass
class Ctx:
    display: str
    root: Any  # where positions come from: a yamlfile.Document (or the data when not located)
    located: bool
    env: Mapping[str, str] | None
    problems: list[Problem] = field(default_factory=list)
    secrets: dict[Loc, set[str]] = field(default_factory=dict)  # env values used, by location
    tainted: set[Loc] = field(default_factory=set)  # locations holding env values
    broken: set[Loc] = field(default_factory=set)  # locations whose interpolation failed

    def add(
        self, loc: Loc, message: str, *, at_key: bool = False, detail: tuple[str, ...] = ()
    ) -> None:
        if any(loc[: len(b)] == b for b in self.broken):
            return  # already reported; don't pile a validation error on top
        if any(t[: len(loc)] == loc or loc[: len(t)] == t for t in self.tainted):
            message = redact(message, self.all_secrets())
            detail = tuple(redact(d, self.all_secrets()) for d in detail)
        if not self.located:
            line, col = 0, 0
        elif at_key:
            line, col = _yaml.key_position(self.root, loc)
        else:
            line, col = _yaml.position(self.root, loc)
        self.problems.append(Problem(self.display, line, col, where(loc), message, detail))

    def all_secrets(self) -> frozenset[str]:
        return frozenset(s for values in self.secrets.values() for s in values)

    def secrets_under(self, prefix: Loc) -> frozenset[str]:
        return frozenset(
            s
            for loc, values in self.secrets.items()
            if loc[: len(prefix)] == prefix
            for s in values
        )


def where(loc: Loc) -> str:
    """``("feeds", 2, "url")`` → ``"feeds[2].url"``; ``()`` → ``"config"``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "config"


def validate(model: type[M], data: Any, loc: Loc, ctx: Ctx) -> M | None:
    """``data`` (None: empty) as ``model``, or None with its problems added to ``ctx``."""
    try:
        return model.model_validate({} if data is None else data)
    except ValidationError as e:
        report(e, loc, ctx, candidates=list(model.model_fields))
        return None


def report(err: ValidationError, prefix: Loc, ctx: Ctx, candidates: Sequence[str]) -> None:
    """Add each error of ``err`` under ``prefix``; unknown top keys get a did-you-mean."""
    for detail in err.errors(include_url=False):
        loc = (*prefix, *detail["loc"])
        if detail["type"] == "extra_forbidden":
            key = str(detail["loc"][-1]) if detail["loc"] else "?"
            known = candidates if len(detail["loc"]) == 1 else ()
            ctx.add(loc, unknown_key(key, known), at_key=True)
        else:
            ctx.add(loc, message_for(detail))


def resolve_path(text: str, base_dir: Path) -> Path:
    """``text`` (``~`` expanded) as an absolute path; a relative one is taken from ``base_dir``."""
    p = Path(text).expanduser()
    return Path(os.path.abspath(p if p.is_absolute() else base_dir / p))
