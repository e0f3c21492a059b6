"""Hot reload of rules: a valid edit is applied, an invalid one refused and logged."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from daemon.config.load import config_from_dict
from daemon.errors import ConfigError
from daemon.match.reload import RuleHolder
from daemon.types import Item

GOOD = "rules:\n  - {id: kursk, title: Kursk, query: Kursk}\n"
BETTER = GOOD + "  - {id: kherson, title: Kherson, query: Kherson}\n"
BROKEN = "rules:\n  - {id: kursk, title: Kursk, query: '(Kursk'}\n"


def item(title: str) -> Item:
    return Item(feed="f", id=title, title=title, summary="", link=None, published=None)


def holder(tmp_path: Path) -> tuple[RuleHolder, Path]:
    rules = tmp_path / "rules"
    rules.mkdir()
    f = rules / "r.yaml"
    f.write_text(GOOD)
    cfg = config_from_dict({"rules": ["rules"], "feeds": []}, base_dir=tmp_path)
    h = RuleHolder(cfg)
    h.load()
    return h, f


def touch(f: Path, text: str, bump: int) -> None:
    f.write_text(text)
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + bump * 10**9))


def test_invalid_edit_keeps_rules_in_force_then_valid_edit_applies(tmp_path: Path) -> None:
    """A broken edit is refused (last_reload_ok False); a later good edit is applied."""
    h, f = holder(tmp_path)
    before = h.matcher()
    touch(f, BROKEN, 1)
    assert h.changed()
    assert h.reload("test") is False
    assert h.last_reload_ok is False and "(Kursk" in (h.last_error or "")
    assert h.matcher() is before and h.count == 1
    assert [m.rule.id for m in h.matcher().match(item("Kursk"))] == ["kursk"]
    touch(f, BETTER, 2)
    assert h.reload("test") is True and h.last_reload_ok is True
    assert [m.rule.id for m in h.matcher().match(item("Kherson news"))] == ["kherson"]
    assert not h.changed()


def test_new_file_in_folder_is_noticed(tmp_path: Path) -> None:
    """Adding a rule file to a watched folder counts as a change."""
    h, f = holder(tmp_path)
    (f.parent / "more.yaml").write_text("rules:\n  - {id: dprk, title: DPRK, query: DPRK}\n")
    assert h.changed() and h.reload("test") and h.count == 2


def test_broken_rules_at_start_raise(tmp_path: Path) -> None:
    """At start an invalid rule file is an error (the daemon does not start)."""
    h, f = holder(tmp_path)
    f.write_text(BROKEN)
    with pytest.raises(ConfigError):
        RuleHolder(h.config).load()


async def test_watch_reloads_on_change(tmp_path: Path) -> None:
    """The watcher task reloads after a file change and stops when asked."""
    h, f = holder(tmp_path)
    stop = asyncio.Event()
    task = asyncio.create_task(h.watch(stop, every=0.01))
    touch(f, BETTER, 1)
    async with asyncio.timeout(5):
        while h.count != 2:  # noqa: ASYNC110 - RuleHolder has no event to wait on
            await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert h.last_reload_ok is True
