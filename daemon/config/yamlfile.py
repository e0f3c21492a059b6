"""Safe YAML loading that keeps line and column marks. Contains no business logic.

ruamel.yaml's round-trip loader builds only plain mappings, sequences and scalars (no arbitrary
Python objects) and remembers where each key and value came from, so every problem found later
(by pydantic, by the rule compiler) can be reported as ``file:line:column``. It is pure Python
and slow (~0.4 ms per rule: seconds for 10,000 rules or feeds).

``parse_yaml``/``read_yaml`` therefore read a file with libyaml first (PyYAML's C parser, when
installed) into plain data, and keep ruamel for what needs it: a file libyaml rejects or that
holds anything the two might read differently is read by ruamel alone (same data, same error
text), and a ``Document``'s marks come from a ruamel re-read made only when a problem must be
located. The C path reads YAML 1.2 as ruamel does (``yes``/``on`` and ``1:30`` stay strings,
``0o17`` is not ``017``) and hands anything else it is unsure of back to ruamel: timestamps,
non-decimal or ``_``-grouped numbers, ``.inf``, merge keys, non-string or duplicate keys,
explicit tags (``!!str``, ``!custom``), ``%`` directives, recursive aliases.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from daemon.errors import ConfigError, Problem

Loc = Sequence[str | int]


def load_yaml(path: Path | str, display: str | None = None) -> Any:
    """Parse the YAML file at ``path`` with marks (ruamel, slow); raise ConfigError with the
    position of a syntax error.

    ``display`` is the file name used in problems (defaults to ``str(path)``).
    Duplicate keys are an error.
    """
    name = display or str(path)
    return load_yaml_text(_read_text(path, name), name)


def read_yaml(path: Path | str, display: str | None = None) -> Document:
    """``parse_yaml`` of the file at ``path`` (problems name it ``display``, default the path)."""
    name = display or str(path)
    return parse_yaml(_read_text(path, name), name)


def _read_text(path: Path | str, name: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([Problem(name, 0, 0, "file", f"cannot read: {e.strerror or e}")]) from e
    except UnicodeDecodeError as e:
        raise ConfigError([Problem(name, 0, 0, "file", f"not UTF-8: {e}")]) from e


def load_yaml_text(text: str, name: str) -> Any:
    """``text`` parsed by ruamel's round-trip loader (the line-keeping one): every node knows
    where it was written. Raises ConfigError with the position of a syntax error."""
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        return yaml.load(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        msg = " ".join(str(p) for p in (e.context, e.problem) if p) or str(e)
        raise ConfigError([Problem(name, line, col, "yaml", msg.replace("\n", " "))]) from e
    except YAMLError as e:
        raise ConfigError([Problem(name, 0, 0, "yaml", str(e).replace("\n", " "))]) from e


def position(root: Any, loc: Loc) -> tuple[int, int]:
    """1-based (line, column) of the node at ``loc`` inside ``root``, as close as we can get.

    Walks mappings by key and sequences by index. For a mapping key that exists the position of
    its *value* is returned; for one that is missing, the position of the mapping itself.
    """
    if isinstance(root, Document):
        root = root.marked()
    node = root
    best = _own_position(root)
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            try:
                pos = (
                    node.lc.value(part)
                    if not isinstance(node[part], CommentedMap | CommentedSeq)
                    else node.lc.key(part)
                )
                best = (pos[0] + 1, pos[1] + 1)
            except (KeyError, TypeError, AttributeError):
                pass
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            try:
                pos = node.lc.item(part)
                best = (pos[0] + 1, pos[1] + 1)
            except (KeyError, TypeError, AttributeError):
                pass
            node = node[part]
        else:
            break
    return best


def key_position(root: Any, loc: Loc) -> tuple[int, int]:
    """1-based (line, column) of the *key* at the end of ``loc`` (for "unknown key" problems)."""
    if isinstance(root, Document):
        root = root.marked()
    parent = root
    for part in loc[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return position(root, loc)
    last = loc[-1] if loc else None
    if isinstance(parent, CommentedMap) and last in parent:
        try:
            line, col = parent.lc.key(last)
            return line + 1, col + 1
        except (KeyError, TypeError, AttributeError):
            pass
    return position(root, loc)


def _own_position(node: Any) -> tuple[int, int]:
    lc = getattr(node, "lc", None)
    if lc is not None and lc.line is not None:
        return lc.line + 1, lc.col + 1
    return 1, 1


def to_plain(node: Any) -> Any:
    """The same data as plain dicts, lists and scalars (ruamel's str subclasses become str)."""
    if isinstance(node, dict):
        return {str(k): to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [to_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    if isinstance(node, bool | int | float) or node is None:
        return node
    return node


# -- the fast path: libyaml, YAML 1.2 as ruamel reads it -------------------------------------

_UNREAD: Any = object()


class Document:
    """A YAML file read once: ``data`` for the program, its marks read only when asked.

    ``data`` is plain dicts, lists and scalars with string keys when libyaml read the file
    (``fast``), else ruamel's round-trip tree (as ``load_yaml_text`` returns it). ``to_plain``
    of either is the same. ``position``/``key_position`` (the module functions take a Document
    too) re-read the text with ruamel the first time, for the exact marks of today's problems;
    ``line`` of a node comes from libyaml's own marks, without a re-read.
    """

    __slots__ = ("_marked", "_node", "data", "name", "text")

    def __init__(self, name: str, text: str, data: Any, *, node: Any = None) -> None:
        self.name = name
        self.text = text
        self.data = data
        self._node = node  # libyaml's root node (fast), else None
        self._marked = _UNREAD if node is not None else data

    @property
    def fast(self) -> bool:
        """True when libyaml read the file (``data`` is plain already)."""
        return self._node is not None

    def marked(self) -> Any:
        """ruamel's round-trip tree of the text (read now if libyaml read the file)."""
        if self._marked is _UNREAD:
            try:
                self._marked = load_yaml_text(self.text, self.name)
            except ConfigError:  # libyaml took what ruamel rejects: no marks, not a crash
                self._marked = None
        return self._marked

    def plain(self, node: Any) -> Any:
        """``to_plain(node)`` for a node of ``data`` (no copy when it is plain already)."""
        return node if self._node is not None else to_plain(node)

    def line(self, loc: Loc) -> int:
        """1-based line of the node at ``loc`` (as ``position``), without a ruamel re-read."""
        if self._node is None:
            return position(self.marked(), loc)[0]
        return node_position(self._node, loc)[0]


def parse_yaml(text: str, name: str) -> Document:
    """``text`` as a ``Document``: libyaml when it can be trusted to read it as ruamel would,
    else ruamel (which raises ConfigError with the position of a syntax error, as before)."""
    if _CParser is not None and not _may_have_directive(text):
        fast = _try_fast_load(text)
        if fast is not None:
            return Document(name, text, fast[0], node=fast[1])
    return Document(name, text, load_yaml_text(text, name))


def _may_have_directive(text: str) -> bool:
    """A line starting with ``%`` (``%YAML 1.1`` makes ruamel read YAML 1.1; ours is 1.2)."""
    return text.lstrip("\ufeff").startswith("%") or "\n%" in text or "\r%" in text


def node_position(root: Any, loc: Loc) -> tuple[int, int]:
    """``position`` computed on libyaml's node tree (its marks are ruamel's, both being the
    events' start marks): the value's mark for a scalar value, the key's for a collection."""
    node = root
    best = _mark(node) if not isinstance(node, _ScalarNode) else (1, 1)
    for part in loc:
        if isinstance(node, _MappingNode):
            for key, value in node.value:
                if key.value == part:
                    best = _mark(key if not isinstance(value, _ScalarNode) else value)
                    node = value
                    break
            else:
                break
        elif (
            isinstance(node, _SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            node = node.value[part]
            best = _mark(node)
        else:
            break
    return best


def _mark(node: Any) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Fallback(Exception):
    """libyaml's reading might differ from ruamel's: let ruamel read the file."""


# The tags our resolver gives. A space cannot be part of a tag written in YAML, so a node with an
# explicit tag (``!!str``, ``!custom``: ruamel builds a TaggedScalar of some) never has one of
# these, and goes to ruamel like every other tag.
_STR = "implicit str"
_SEQ = "implicit seq"
_MAP = "implicit map"
_INT = "implicit int"
_FLOAT = "implicit float"
_BOOL = "implicit bool"
_NULL = "implicit null"

# ruamel's YAML 1.2 implicit resolvers (ruamel/yaml/resolver.py), by first character: a plain
# scalar matching one gets its tag, any other plain scalar is a string.
_RESOLVERS: list[tuple[str, re.Pattern[str], str]] = [
    (_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF"),
    (
        _FLOAT,
        re.compile(
            r"""^(?:
             [-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
            |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
            |[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN))$""",
            re.X,
        ),
        "-+0123456789.",
    ),
    (
        _INT,
        re.compile(
            r"""^(?:[-+]?0b[0-1_]+
            |[-+]?0o?[0-7_]+
            |[-+]?[0-9_]+
            |[-+]?0x[0-9a-fA-F_]+)$""",
            re.X,
        ),
        "-+0123456789",
    ),
    ("implicit merge", re.compile(r"^(?:<<)$"), "<"),
    (_NULL, re.compile(r"^(?:~|null|Null|NULL|)$"), "~nN"),
    (
        "implicit timestamp",
        re.compile(
            r"""^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
            |[0-9][0-9][0-9][0-9] -[0-9][0-9]? -[0-9][0-9]?
            (?:[Tt]|[ \t]+)[0-9][0-9]?
            :[0-9][0-9] :[0-9][0-9] (?:\.[0-9]*)?
            (?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$""",
            re.X,
        ),
        "0123456789",
    ),
    ("implicit value", re.compile(r"^(?:=)$"), "="),
]
_BY_FIRST: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
for _tag, _regexp, _first in _RESOLVERS:
    for _c in _first:
        _BY_FIRST.setdefault(_c, []).append((_tag, _regexp))

# What ruamel builds as exactly these plain values; any other spelling goes to ruamel.
_PLAIN_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_PLAIN_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(?=[eE]))(?:[eE][-+]?[0-9]+)?")
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))


def _to_int(value: str) -> int:
    if not _PLAIN_INT.fullmatch(value):
        raise _Fallback
    return int(value)


def _to_float(value: str) -> float:
    if not _PLAIN_FLOAT.fullmatch(value):
        raise _Fallback
    return float(value)


def _to_bool(value: str) -> bool:
    try:
        return _BOOLS[value]
    except KeyError:
        raise _Fallback from None


def _to_null(value: str) -> None:
    if value not in _NULLS:
        raise _Fallback


_SCALARS: dict[str, Callable[[str], Any]] = {
    _INT: _to_int,
    _FLOAT: _to_float,
    _BOOL: _to_bool,
    _NULL: _to_null,
}

_CParser: Any = None
_ScalarNode: Any = None
_SequenceNode: Any = None
_MappingNode: Any = None
try:  # PyYAML is optional: without it (or built without libyaml) ruamel reads everything
    _pyyaml: Any = importlib.import_module("yaml")
    _CParser = importlib.import_module("yaml.cyaml").CParser
    _ScalarNode, _SequenceNode, _MappingNode = (
        _pyyaml.ScalarNode,
        _pyyaml.SequenceNode,
        _pyyaml.MappingNode,
    )
except (ImportError, AttributeError):  # pragma: no cover - depends on the environment
    _CParser = None

if _CParser is not None:

    class _Loader(_CParser):  # type: ignore[misc]
        """libyaml's parser and composer; tags resolved with ruamel's YAML 1.2 rules."""

        def descend_resolver(self, current_node: Any, current_index: Any) -> None:
            pass

        def ascend_resolver(self) -> None:
            pass

        def resolve(self, kind: Any, value: Any, implicit: tuple[bool, bool]) -> str:
            if kind is _ScalarNode:
                if implicit[0]:  # a plain scalar
                    if not value:
                        return _NULL
                    for tag, regexp in _BY_FIRST.get(value[0], ()):
                        if regexp.match(value):
                            return tag
                return _STR
            return _SEQ if kind is _SequenceNode else _MAP


def _try_fast_load(text: str) -> tuple[Any, Any] | None:
    """``_fast_load``, or None for anything libyaml or the checks refuse (ruamel decides)."""
    try:
        return _fast_load(text)
    except Exception:  # noqa: BLE001 - a syntax error, a _Fallback, a RecursionError, ...
        return None


def _fast_load(text: str) -> tuple[Any, Any]:
    """(plain data, root node) read by libyaml; raises on anything ruamel should read."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    finally:
        loader.dispose()
    if node is None:
        raise _Fallback  # an empty document: cheap for ruamel, and its None has no marks
    return _build(node, {}, set()), node


def _build(node: Any, memo: dict[int, Any], active: set[int]) -> Any:
    cls = node.__class__
    if cls is _ScalarNode:
        if node.tag == _STR:
            return node.value
        convert = _SCALARS.get(node.tag)
        if convert is None:
            raise _Fallback
        return convert(node.value)
    key = id(node)
    if key in memo:  # an alias: ruamel shares the object too
        return memo[key]
    if key in active:
        raise _Fallback  # a recursive structure
    active.add(key)
    out: Any
    if cls is _SequenceNode and node.tag == _SEQ:
        out = [_build(item, memo, active) for item in node.value]
    elif cls is _MappingNode and node.tag == _MAP:
        out = {}
        for k, v in node.value:
            if k.__class__ is not _ScalarNode or k.tag != _STR:
                raise _Fallback  # a non-string key, a merge key (``<<``)
            out[k.value] = _build(v, memo, active)
        if len(out) != len(node.value):
            raise _Fallback  # a duplicate key: ruamel reports it
    else:
        raise _Fallback
    active.discard(key)
    memo[key] = out
    return out
