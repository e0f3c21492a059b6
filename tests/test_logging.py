"""Text logs are safe to print: control characters escaped, values bounded (daemon/logging.py)."""

from __future__ import annotations

import io
import logging

from daemon.logging import MAX_VALUE, log, setup_logging


def test_control_characters_and_long_values_cannot_forge_lines() -> None:
    out = io.StringIO()
    handler = setup_logging("info", "text", secrets=["s3cret-token"], stream=out)
    try:
        logger = logging.getLogger("daemon.test")
        log(logger, "websub", query="a\x1b[2J\r\nFAKE 2026 INFO forged", token="s3cret-token")
        log(logger, "poll", title="x" * (MAX_VALUE + 500))
        logger.warning("path %s", "/w/\x1b]0;pwned\x07")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3  # nothing added a line
    assert "\x1b" not in out.getvalue() and "\x07" not in out.getvalue()
    assert "\\u001b[2J\\r\\nFAKE" in lines[0] and "token=***" in lines[0]
    assert "s3cret" not in lines[0]
    assert len(lines[1]) < MAX_VALUE + 100 and lines[1].endswith("…")
    assert "\\x1b]0;pwned\\x07" in lines[2]
