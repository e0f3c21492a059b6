"""The rules in force, and their hot reload (SIGHUP or a change to a rule file).

A reload builds the new rule set completely and swaps it in only if it is valid; an invalid
edit is logged with every problem and the rules in force stay in force. ``status`` tells
whether the last reload succeeded (for ``feedwatch status`` and metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from daemon.config.load import Config
from daemon.errors import ConfigError
from daemon.logging import log
from daemon.match.matcher import Matcher
from daemon.match.rules import RuleSet, load_rules, rule_files

logger = logging.getLogger("daemon.rules")
WATCH_EVERY = 2.0


class RuleHolder:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._matcher: Matcher | None = None
        self.ruleset: RuleSet | None = None
        self.last_reload_ok: bool | None = None
        self.last_error: str | None = None
        self._stamp: dict[Path, float] = {}

    def _build(self) -> tuple[RuleSet, Matcher]:
        ruleset = load_rules(list(self.config.rules), notifiers=set(self.config.notifiers))
        return ruleset, Matcher(ruleset)

    def load(self) -> None:
        """Load the rules at start; raises ConfigError."""
        self.ruleset, self._matcher = self._build()
        self._stamp = self._stamps()

    @property
    def count(self) -> int:
        return len(self.ruleset.rules) if self.ruleset else 0

    def matcher(self) -> Matcher:
        assert self._matcher is not None, "rules not loaded"
        return self._matcher

    def reload(self, why: str = "request") -> bool:
        self._stamp = self._stamps()
        try:
            ruleset, matcher = self._build()
        except ConfigError as e:
            self.last_reload_ok, self.last_error = False, e.render()
            log(
                logger,
                "rules-reload",
                level=logging.ERROR,
                ok=False,
                trigger=why,
                kept=self.count,
                problems=len(e.problems),
                errors=e.render(),
            )
            return False
        self.ruleset, self._matcher = ruleset, matcher
        self.last_reload_ok, self.last_error = True, None
        log(logger, "rules-reload", ok=True, trigger=why, rules=self.count)
        return True

    def _stamps(self) -> dict[Path, float]:
        stamps: dict[Path, float] = {}
        with contextlib.suppress(ConfigError):
            for f in rule_files(list(self.config.rules)):
                with contextlib.suppress(OSError):
                    stamps[f] = f.stat().st_mtime
        return stamps

    def changed(self) -> bool:
        return self._stamps() != self._stamp

    async def watch(self, stop: asyncio.Event, every: float = WATCH_EVERY) -> None:
        """Reload when a rule file is added, removed or modified (mtime polling: no inotify)."""
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            if not stop.is_set() and self.changed():
                self.reload("file-change")
