"""Rules and matching. Pure: no I/O but reading rule files, the lemma lists word forms come
from (``query.lexicon``: simplemma's data, with an index cached on disk), and the feed files
or folders ``feedwatch test-rule`` reads.

``query`` is the query language (tokenize → parse → resolve → compile → evaluate; word forms
and transliteration in ``query.forms``); ``rules`` loads and checks rule files (``rule_spec``
is a rule's shape) into a ``RuleSet``; ``matcher.Matcher`` matches an ``Item`` against every
rule and explains each match; ``examples`` runs the rules' examples (``feedwatch check``);
``testrule`` backs ``feedwatch test-rule`` (``folder`` reads many days at once);
``backtest`` says what rules would have matched over archived items (``feedwatch
backtest``); ``reload`` holds the rules in force and reloads them on change.

May import: ``daemon.config`` (YAML positions and messages), ``daemon.errors``,
``daemon.types``, ``daemon.parse`` (``test-rule`` reads a feed file).
"""
