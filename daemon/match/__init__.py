"""Rules and matching. Pure: no I/O but reading rule files.

``query`` is the query language (tokenize → parse → resolve → compile → evaluate);
``rules`` loads and checks rule files (``rule_spec`` is a rule's shape) into a ``RuleSet``;
``matcher.Matcher`` matches an ``Item`` against every rule and explains each match;
``examples`` runs the rules' examples (``feedwatch check``); ``testrule`` backs
``feedwatch test-rule``; ``reload`` holds the rules in force and reloads them on change.

May import: ``daemon.config`` (YAML positions and messages), ``daemon.errors``,
``daemon.types``, ``daemon.parse`` (``test-rule`` reads a feed file).
"""
