"""Stories: the same event reported by many outlets, recognised as one.

``terms`` gives an item's weighted terms and ``profile`` weighs them by the stream's document
frequencies and compares an item with a story's accumulated profile (pure); ``cluster`` is the
design and the in-memory reference index; ``index`` (with its Lua in ``lua``) is the Redis
index every process shares; ``sources`` says which publisher an item counts as.

May import: ``daemon.match.query`` (tokens), ``daemon.parse.urls``, ``daemon.redis``,
``daemon.errors``.
"""
