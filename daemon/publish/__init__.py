"""From matches to alerts on the Redis Stream.

``alerting`` builds alerts (explained: terms, spans, excerpt) and applies stories (one alert
per rule and story, follow-ups, corroboration, throttle); ``silence`` holds silences;
``stream.Publisher`` publishes each alert once, idempotently, in one Lua step.

May import: ``daemon.match``, ``daemon.stories``, ``daemon.parse.excerpt``,
``daemon.redis``, ``daemon.errors``, ``daemon.types``, ``alerts.wire``.
"""
