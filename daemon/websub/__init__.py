"""WebSub (W3C, 2018): pushes from hubs instead of polls, with polling as the fallback.

``decisions`` is the pure subscriber logic (when to subscribe, renew, accept); ``policy`` says
which hubs may be contacted (pure) and ``hubs`` looks them up (I/O); ``store`` keeps links and
subscriptions in Redis; ``service`` does the I/O: requests to hubs, the callback endpoint,
the upkeep loop. A verified push becomes a poll result like any other.

May import: ``daemon.config``, ``daemon.fetch``, ``daemon.parse.feedlinks``,
``daemon.ops.http`` (its callback is a route), ``daemon.redis``.
"""
