"""Operating the daemon: the HTTP endpoint, metrics and ``feedwatch status``.

``http`` is the small HTTP/1.1 server (``/healthz``, ``/readyz``, ``/metrics`` and the
WebSub callback routes); ``metrics`` the Prometheus registry; ``status`` what every feed,
the delivery stream and the instances are doing.

May import: ``daemon.config``, ``daemon.redis``, and read the state that ``poll`` and
``websub`` keep.
"""
