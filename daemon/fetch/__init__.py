"""Fetching a feed: the HTTP client with conditional GET, limits, redirects and politeness.

``client.Fetcher`` turns a URL and the validators of the last poll into a ``FetchResult``
(body, ``NotModified``, or a ``FetchError`` value). I/O edge; knows nothing about feeds.

May import: ``daemon.errors``, ``daemon.types``.
"""
