"""Safe YAML loading that keeps line and column marks. Contains no business logic.

ruamel.yaml's round-trip loader builds only plain mappings, sequences and scalars (no arbitrary
Python objects) and remembers where each key and value came from, so every problem found later
(by pydantic, by the rule compiler) can be reported as ``file:line:column``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from daemon.errors import ConfigError, Problem

Loc = Sequence[str | int]


def load_yaml(path: Path | str, display: str | None = None) -> Any:
    """Parse the YAML file at ``path``; raise ConfigError with the position of a syntax error.

    ``display`` is the file name used in problems (defaults to ``str(path)``).
    Duplicate keys are an error.
    """
    name = display or str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([Problem(name, 0, 0, "file", f"cannot read: {e.strerror or e}")]) from e
    except UnicodeDecodeError as e:
        raise ConfigError([Problem(name, 0, 0, "file", f"not UTF-8: {e}")]) from e
    return load_yaml_text(text, name)


def load_yaml_text(text: str, name: str) -> Any:
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
