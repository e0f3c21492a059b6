"""The default rules on real news: each rule's precision and recall against labelled items.

For each day of ``../shared/corpora/real-news/`` with a label file in ``eval/labels/rules/``,
every item is normalised as the daemon does it (title; the summary's HTML turned into plain
text) and matched against ``rules/`` by the real ``Matcher``. A rule's matches are compared with
the items labelled ``match`` for it (``borderline`` items are not scored); every other item is
one it should not match. The rules' own ``examples`` are scored too (they must all behave:
``feedwatch check`` fails otherwise).

Prints, per rule: true and false positives, misses, precision and recall per day and in all;
``--show`` lists the links of the false positives and misses. Exits 0 with a message when the
corpus is absent.

    python eval/rules.py [--rules rules] [--day 2023-07-07 ...] [--show] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: ``python eval/rules.py``
    sys.path.insert(0, str(ROOT))

from daemon.match.examples import check_examples  # noqa: E402
from daemon.match.matcher import Matcher  # noqa: E402
from daemon.match.rules import load_rules  # noqa: E402
from daemon.parse.text import html_to_text  # noqa: E402
from daemon.types import Item  # noqa: E402
from eval.stories import CORPUS, read_day  # noqa: E402

LABELS = ROOT / "eval" / "labels" / "rules"


def ratio(a: int, b: int) -> float:
    return round(a / b, 3) if b else 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--rules", type=Path, default=ROOT / "rules")
    parser.add_argument("--day", action="append", help="only these days (default: all labelled)")
    parser.add_argument("--show", action="store_true", help="list false positives and misses")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args(argv)
    if not args.corpus.is_dir():
        print(f"rules eval skipped: no real-news corpus at {args.corpus}")
        return 0
    ruleset = load_rules([args.rules])
    matcher = Matcher(ruleset)
    bad_examples = check_examples(ruleset)
    label_files = {p.stem: p for p in sorted(args.labels.glob("*.yaml"))}
    yaml = YAML(typ="safe")
    total: dict[str, dict[str, int]] = defaultdict(lambda: {"tp": 0, "fp": 0, "fn": 0})
    report: dict[str, Any] = {"days": {}, "examples_failing": len(bad_examples)}
    for day in args.day or sorted(label_files):
        labels = yaml.load(label_files[day].read_text(encoding="utf-8"))["rules"]
        entries = read_day(args.corpus / day).entries
        fired: dict[str, set[str]] = defaultdict(set)
        for n, e in enumerate(entries):
            summary = html_to_text(e.description) if e.description else ""
            item = Item(e.feed, str(n), html_to_text(e.title), summary, e.link, e.published)
            for m in matcher.match(item):
                fired[m.rule.id].add(e.link)
        print(f"{day}: {len(entries)} items")
        report["days"][day] = {}
        for rule in ruleset.rules:
            want = set((labels.get(rule.id) or {}).get("match") or [])
            skip = set((labels.get(rule.id) or {}).get("borderline") or [])
            got = fired[rule.id] - skip
            tp, fp, fn = len(got & want), len(got - want), len(want - got)
            for k, v in (("tp", tp), ("fp", fp), ("fn", fn)):
                total[rule.id][k] += v
            figures = {"tp": tp, "fp": fp, "fn": fn}
            figures |= {"precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn)}
            report["days"][day][rule.id] = figures
            print(
                f"  {rule.id:22} {tp:3} right, {fp:3} wrong, {fn:3} missed: precision "
                f"{figures['precision']:.2f}, recall {figures['recall']:.2f}"
            )
            if args.show:
                for link in sorted(got - want):
                    print(f"      wrong  {link}")
                for link in sorted(want - got):
                    print(f"      missed {link}")
    print("all days:")
    report["total"] = {}
    for rule in ruleset.rules:
        t = total[rule.id]
        figures = {**t, "precision": ratio(t["tp"], t["tp"] + t["fp"])}
        figures["recall"] = ratio(t["tp"], t["tp"] + t["fn"])
        report["total"][rule.id] = figures
        print(
            f"  {rule.id:22} {t['tp']:3} right, {t['fp']:3} wrong, {t['fn']:3} missed: "
            f"precision {figures['precision']:.2f}, recall {figures['recall']:.2f}"
        )
    print(f"rule examples that misbehave: {len(bad_examples)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
