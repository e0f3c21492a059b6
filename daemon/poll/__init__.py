"""One feed's poll, and the loop that runs them: the orchestration of the data flow.

``scheduling`` adapts APScheduler (a job only hands its feed to the ``poller``);
``poller.Poller`` owns the polls in flight, their leases (``leases``, shared out among
processes by ``peers``) and drains them on shutdown (``shutdown``); ``pipeline.Pipeline`` is
one poll: fetch → parse (off the loop: ``parse_pool``) → new? (``decide``, pure, with the
feed's ``state`` in Redis) → match → stories → publish, returning a ``result.PollResult``;
``rhythm`` (pure) says when to poll next, ``health`` raises feed-health alerts, ``archive``
keeps every new item a while for ``feedwatch backtest``.

May import anything below it: ``config``, ``fetch``, ``parse``, ``match``, ``stories``,
``publish``, ``websub``, ``redis``, ``ops``.
"""
