"""Bytes → items. Pure: no I/O, no clock of its own.

``feed.parse_items`` is the entry: the lxml fast path (``fast``, ``fastentry``) for well-formed
RSS/Atom, feedparser otherwise, ``jsonfeed`` for JSON Feed, each giving a ``parsed.ParsedFeed``;
``normalize`` turns parsed entries into ``Item``s (ids, plain text via ``text``, absolute links
via ``urls``, UTC dates). ``feedlinks`` reads the links a feed declares (self, WebSub hub);
``excerpt`` cuts the sentence around a match. A new feed format is a module here, called from
``feed``.

May import: ``daemon.errors``, ``daemon.types``. Nothing that does I/O.
"""
