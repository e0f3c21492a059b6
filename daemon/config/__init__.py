"""Configuration: feedwatch.yaml and its feeds, read, checked and typed. Pure; no network.

``load`` is the entry (``load_config``: YAML with line numbers → ``${VAR}`` interpolation
(``env``) → pydantic models (``models``, value checks in ``values``) → ``Config``), every
problem located at file:line:column (``context``, ``messages``, ``yamlfile``). ``feeds``
expands ``{opml: FILE}`` entries (``opml`` reads and writes OPML); ``opml_io`` is the
``feeds import`` / ``feeds export`` commands.

May import: ``daemon.errors``, ``daemon.durations``, ``daemon.redis.url`` (to check a URL),
``alerts.registry`` (to check notifier options). Nothing that polls, matches or delivers.
"""
