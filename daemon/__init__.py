"""feedwatch: poll news feeds, match items against rules, deliver explained alerts through Redis."""

from __future__ import annotations

__version__ = "0.1.0"
