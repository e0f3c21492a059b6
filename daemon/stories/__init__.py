"""Stories: the same event from many outlets, recognised as one.

``sketch`` makes an item's fingerprint and compares two (pure); ``cluster`` is the
clustering core and an in-memory index (pure); ``sources`` says who an item's source is (a
publisher, not a feed); ``index`` is the Redis-backed index shared by every process, whose Lua
scripts and record layout are in ``lua``.

May import: ``daemon.match.query`` (tokens), ``daemon.parse.urls``, ``daemon.redis``,
``daemon.errors``.
"""
