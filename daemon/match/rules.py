"""Rule files → validated, compiled ``Rule``s; every problem located and reported at once.

A rule file holds ``aliases`` (named queries usable in every rule of every file) and ``rules``.
The file shape is ``daemon.match.rule_spec.RuleSpec`` (pydantic v2, ``extra="forbid"``): to add a
rule key, add a field there (and, if the pipeline needs it often, to ``Rule``); ``Rule.spec`` always
carries the whole validated spec. Semantic checks after the shape: every query compiles
(aliases expanded), rule ids are unique across files, notifier names exist.
Examples are run by ``daemon.match.examples`` (``feedwatch check``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from daemon.config import yamlfile as _yaml
from daemon.config.messages import message_for, unknown_key
from daemon.errors import ConfigError, Problem
from daemon.match.query import AliasTable, BrokenAliasError, Query, QuerySyntaxError, compile_text
from daemon.match.query.lexer import ALIAS_NAME, did_you_mean
from daemon.match.rule_spec import Examples, RuleFileSpec, RuleSpec

RULE_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, eq=False)
class Rule:
    """A loaded rule: its spec's values, where it was written, and its compiled query."""

    id: str
    title: str
    query: str
    severity: str
    notify: tuple[str, ...]
    feeds: tuple[str, ...]
    enabled: bool
    file: str
    line: int
    compiled: Query = field(repr=False)
    spec: RuleSpec = field(repr=False)
    index: int = 0  # position in its file's ``rules:`` list

    @property
    def examples(self) -> Examples:
        return self.spec.examples

    def wants_feed(self, feed: str, tags: Collection[str]) -> bool:
        """True if the rule has no ``feeds`` restriction or ``feed``/one of ``tags`` is listed."""
        if not self.feeds:
            return True
        return any(
            (ref[4:] in tags) if ref.startswith("tag:") else ref == feed for ref in self.feeds
        )


@dataclass(frozen=True)
class RuleSet:
    """Every rule of every rule file, in file order then rule order."""

    rules: tuple[Rule, ...]
    files: tuple[Path, ...]
    aliases: Mapping[str, str] = field(default_factory=dict)

    def by_id(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)


def make_rule(
    spec: RuleSpec,
    compiled: Query | None = None,
    *,
    file: str = "<memory>",
    line: int = 0,
    index: int = 0,
) -> Rule:
    """A Rule from a validated spec (its query compiled here without aliases if not given;
    may raise QuerySyntaxError). For tools, tests and benchmarks that build rules in memory."""
    return Rule(
        id=spec.id,
        title=spec.title if spec.title is not None else spec.id,
        query=spec.query,
        severity=spec.severity,
        notify=spec.notify,
        feeds=spec.feeds,
        enabled=spec.enabled,
        file=file,
        line=line,
        compiled=compiled if compiled is not None else compile_text(spec.query),
        spec=spec,
        index=index,
    )


def rule_files(paths: Sequence[Path]) -> list[Path]:
    """The rule files named by ``paths``: files as given, folders' ``*.yaml``/``*.yml`` sorted."""
    out: list[Path] = []
    for path in paths:
        p = Path(path)
        if p.is_dir():
            out.extend(sorted(f for f in p.iterdir() if f.suffix in RULE_SUFFIXES and f.is_file()))
        elif p.is_file():
            out.append(p)
    return list(dict.fromkeys(out))


@dataclass
class _File:
    path: Path
    name: str
    doc: _yaml.Document  # data read by libyaml when it can; marks re-read only for a problem
    root: Any  # the file's top-level mapping (``doc.data``, or ``{}`` for an empty file)

    @property
    def text(self) -> str:
        return self.doc.text


@dataclass
class _Alias:
    name: str
    text: str
    file: _File


def load_rules(paths: Sequence[Path], *, notifiers: Collection[str] | None = None) -> RuleSet:
    """Load and compile every rule file in ``paths`` (files or folders).

    Raises ConfigError listing every problem. ``notifiers`` are the configured notifier names
    rules may route to; ``None`` skips that check.
    """
    ruleset, problems = compile_rules(paths, notifiers=notifiers)
    if problems:
        raise ConfigError(problems)
    return ruleset


def compile_rules(
    paths: Sequence[Path], *, notifiers: Collection[str] | None = None
) -> tuple[RuleSet, list[Problem]]:
    """The rules that compiled, and every problem found on the way (raises nothing)."""
    problems: list[Problem] = []
    files = _read_files(paths, problems)
    aliases = _collect_aliases(files, problems)
    table = AliasTable({a.name: a.text for a in aliases.values()})
    for name, err in table.errors.items():
        a = aliases[name]
        problems.append(_query_problem(a.file, ("aliases", name), a.text, err, "alias"))
    rules: list[Rule] = []
    first_seen: dict[str, str] = {}
    for f, loc, raw in _rule_entries(files, problems):
        spec, rule = _load_rule(f, loc, raw, table, problems)
        if spec is None:
            continue
        line = f.doc.line(loc)
        if spec.id in first_seen:
            msg = f"duplicate rule id {spec.id!r} (first defined at {first_seen[spec.id]})"
            problems.append(_at(f, (*loc, "id"), msg))
        else:
            first_seen[spec.id] = f"{f.name}:{line}"
        if notifiers is not None:
            known = sorted(notifiers)
            for i, name in enumerate(spec.notify):
                if name not in notifiers:
                    hint = did_you_mean(name, known) or f" (known: {', '.join(known) or 'none'})"
                    problems.append(_at(f, (*loc, "notify", i), f"unknown notifier {name!r}{hint}"))
        if rule is not None:
            rules.append(rule)
    ruleset = RuleSet(
        tuple(rules), tuple(f.path for f in files), {a.name: a.text for a in aliases.values()}
    )
    return ruleset, problems


def _at(f: _File, loc: tuple[str | int, ...], message: str, *, key: bool = False) -> Problem:
    line, col = (_yaml.key_position if key else _yaml.position)(f.doc, loc)
    return Problem(f.name, line, col, where(loc), message)


def _read_files(paths: Sequence[Path], problems: list[Problem]) -> list[_File]:
    problems.extend(
        Problem(str(path), 0, 0, "rules", "no such file or folder")
        for path in paths
        if not Path(path).exists()
    )
    out: list[_File] = []
    for path in rule_files(paths):
        name = str(path)
        try:
            text = path.read_text(encoding="utf-8")
            doc = _yaml.parse_yaml(text, name)
        except ConfigError as e:
            problems.extend(e.problems)
            continue
        except (OSError, UnicodeDecodeError) as e:
            problems.append(Problem(name, 0, 0, "file", f"cannot read: {e}"))
            continue
        root = {} if doc.data is None else doc.data
        f = _File(path, name, doc, root)
        if not isinstance(root, Mapping):
            problems.append(_at(f, (), "expected a mapping with 'rules:' (and 'aliases:')"))
            continue
        try:
            RuleFileSpec.model_validate(doc.plain(root))
        except ValidationError as e:
            _report(f, (), e, RuleFileSpec, problems)
            continue
        out.append(f)
    return out


def _collect_aliases(files: list[_File], problems: list[Problem]) -> dict[str, _Alias]:
    found: dict[str, _Alias] = {}
    for f in files:
        for name, text in (f.root.get("aliases") or {}).items():
            loc = ("aliases", str(name))
            if not isinstance(name, str) or not ALIAS_NAME.match(name):
                problems.append(
                    _at(
                        f,
                        loc,
                        f"alias name {str(name)!r}: use letters, digits, '_' and '-'",
                        key=True,
                    )
                )
            elif not isinstance(text, str) or not text.strip():
                problems.append(_at(f, loc, "an alias is a query: expected a non-empty string"))
            elif name in found:
                first = found[name].file
                line, _ = _yaml.key_position(first.doc, loc)
                problems.append(
                    _at(
                        f,
                        loc,
                        f"alias {name!r} is already defined at {first.name}:{line}",
                        key=True,
                    )
                )
            else:
                found[name] = _Alias(name, str(text), f)
    return found


def _rule_entries(
    files: list[_File], problems: list[Problem]
) -> Iterator[tuple[_File, tuple[str | int, ...], Any]]:
    for f in files:
        for i, raw in enumerate(f.root.get("rules") or []):
            loc: tuple[str | int, ...] = ("rules", i)
            if not isinstance(raw, Mapping):
                problems.append(_at(f, loc, "expected a rule (a mapping with id, query, …)"))
                continue
            yield f, loc, raw


def _load_rule(
    f: _File, loc: tuple[str | int, ...], raw: Any, table: AliasTable, problems: list[Problem]
) -> tuple[RuleSpec | None, Rule | None]:
    """The rule's valid spec (if its shape is right) and the rule (if its query compiles too)."""
    spec: RuleSpec | None = None
    try:
        spec = RuleSpec.model_validate(f.doc.plain(raw))
    except ValidationError as e:
        _report(f, loc, e, RuleSpec, problems)
    query = spec.query if spec is not None else raw.get("query")
    if not isinstance(query, str) or not query.strip():
        return spec, None  # reported by the shape check
    try:
        compiled = compile_text(query, table)  # even for a bad rule: report all its problems
    except QuerySyntaxError as e:
        problems.append(_query_problem(f, (*loc, "query"), query, e, "query"))
        return spec, None
    except BrokenAliasError:
        return spec, None  # the alias's own problem is reported where it is defined
    if spec is None:
        return None, None
    return spec, make_rule(spec, compiled, file=f.name, line=f.doc.line(loc), index=int(loc[1]))


def _report(
    f: _File,
    prefix: tuple[str | int, ...],
    err: ValidationError,
    model: type[BaseModel],
    problems: list[Problem],
) -> None:
    for detail in err.errors(include_url=False):
        # Drop the union tags ("text"/"item") pydantic puts in locations of examples.
        parts = detail["loc"]
        loc = (
            *prefix,
            *(
                p
                for i, p in enumerate(parts)
                if not (i and isinstance(parts[i - 1], int) and p in ("text", "item"))
            ),
        )
        if detail["type"] == "extra_forbidden":
            known = _known_keys(model, loc[len(prefix) : -1])
            problems.append(_at(f, loc, unknown_key(str(loc[-1]), known), key=True))
        else:
            problems.append(_at(f, loc, message_for(detail)))


def _known_keys(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """The keys the model nested at ``loc`` (inside ``model``) accepts."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None or not isinstance(part, str):
            continue
        info = current.model_fields.get(part)
        current = _model_in(info.annotation) if info is not None else None
    return list(current.model_fields) if current is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


# -- locating problems --------------------------------------------------------------------


def where(loc: Sequence[str | int]) -> str:
    """``rules[2].examples.match[0]`` for a location path."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "rules"


def _query_problem(
    f: _File, loc: tuple[str | int, ...], query: str, err: QuerySyntaxError, what: str
) -> Problem:
    line, col = _yaml.position(f.doc, loc)
    return err.problem(f.name, where(loc), query, f.text.splitlines(), line, col, what)
