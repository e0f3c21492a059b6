"""The shape of a rule file, as pydantic v2 models (``extra="forbid"``, frozen).

To add a rule key add a field to ``RuleSpec`` with a default (``min_sources``, ``within`` and
``throttle`` are such keys); ``daemon.match.rules`` reports shape problems located in the file, with
did-you-mean for unknown keys, and every loaded ``Rule`` carries its ``spec``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from daemon.config.values import Duration

Severity = Literal["info", "low", "medium", "high", "critical"]
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExampleItem(_Strict):
    """An example written as an item, to exercise field scopes (``title:``, ``link:``, ``tag:``)."""

    title: str = ""
    summary: str = ""
    link: str | None = None
    feed: str = "example"
    tags: tuple[str, ...] = ()


Example = Annotated[
    Annotated[str, Tag("text")] | Annotated[ExampleItem, Tag("item")],
    Discriminator(lambda v: "text" if isinstance(v, str) else "item"),
]


class Examples(_Strict):
    """Texts the rule must match / must not match. A plain text is an item's summary."""

    match: tuple[Example, ...] = ()
    no_match: tuple[Example, ...] = ()


class RuleSpec(_Strict):
    """One entry of ``rules:`` exactly as written (after validation)."""

    id: str = Field(min_length=1)
    title: str | None = None
    query: str = Field(min_length=1)
    severity: Severity = "medium"
    notify: tuple[str, ...] = ()
    feeds: tuple[str, ...] = ()
    enabled: bool = True
    examples: Examples = Examples()
    # Stories (daemon/stories/index.py): alert only once this many distinct feeds carried the
    # story within ``within`` seconds; at most one new alert per ``throttle`` seconds (0: off).
    min_sources: int = Field(default=1, ge=1, le=8, strict=True)
    within: Duration = 6 * 3600.0
    throttle: Duration = 0.0

    @field_validator("within")
    @classmethod
    def _positive_window(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("within must be a positive duration like '6h'")
        return value

    @field_validator("id")
    @classmethod
    def _id_chars(cls, value: str) -> str:
        if not set(value) <= _ID_CHARS:
            raise ValueError("use only letters, digits, '-', '_' and '.' in a rule id")
        return value

    @field_validator("feeds")
    @classmethod
    def _feed_refs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for ref in value:
            if not ref.strip() or ref.strip() == "tag:":
                raise ValueError(f"{ref!r} is not a feed name or tag:NAME")
        return tuple(ref.strip() for ref in value)


class RuleFileSpec(_Strict):
    """A rule file's top level; each rule is validated on its own so all problems are found."""

    aliases: dict[str, Any] = {}
    rules: list[Any] = []
