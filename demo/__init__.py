"""The feedwatch demo: sample feeds (``demo/feeds``), a local feed server and ``make demo``."""

from __future__ import annotations
