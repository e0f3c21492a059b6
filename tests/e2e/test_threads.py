"""A story in three outlets through the real daemon to local stand-ins of Telegram and Slack's
Web API: one message each, and two replies to it (Telegram) or in its thread (Slack)."""

from __future__ import annotations

import json

from tests.e2e.conftest import Feedwatch
from tests.e2e.test_stories import REWRITES, kursk_only, ok, serve
from tests.notifiers.fakeservice import FakeService, Reply
from tests.support.httpserver import FeedServer

TOKEN = "123456789:AAHsecretTOKENvalue_abcdefghijk"
SLACK_TOKEN = "xoxb-1-2-SECRETe2etoken"


class Answers(FakeService):
    """Answers each request as the service would, message ids counting up."""

    def __init__(self, answer: str) -> None:
        super().__init__()
        self.answer = answer
        self.will(*(self._reply(n) for n in range(1, 10)))

    def _reply(self, n: int) -> Reply:
        if self.answer == "telegram":
            body = {"ok": True, "result": {"message_id": 100 + n}}
        else:
            body = {"ok": True, "channel": "C1", "ts": f"1700000000.00{n:04d}"}
        return Reply(200, json.dumps(body).encode())


def test_a_story_in_three_outlets_is_one_message_and_two_replies(
    fw: Feedwatch, feed_server: FeedServer
) -> None:
    kursk_only(fw)
    with Answers("telegram") as tg, Answers("slack") as sl:
        fw.config["defaults"]["notify"] = ["tg", "sl"]
        fw.config["notifiers"] = {
            "tg": {"type": "telegram", "bot_token": TOKEN, "chat_id": "@ukraine_desk",
                   "api_url": tg.url("/")},
            "sl": {"type": "slack", "token": SLACK_TOKEN, "channel": "#desk",
                   "api_url": tg.url("/").replace(str(tg.port), str(sl.port)),
                   "min_interval": 0},
        }  # fmt: skip
        for feed in REWRITES:
            fw.add_feed(feed, serve(feed_server, feed))
            run = fw.run()
            ok(run)
            assert TOKEN.split(":")[1] not in run.stderr and SLACK_TOKEN not in run.stderr
        telegram = [json.loads(r.body) for r in tg.requests]
        slack = [json.loads(r.body) for r in sl.requests]
    assert len(telegram) == len(slack) == 3
    assert "reply_parameters" not in telegram[0]
    assert [t["reply_parameters"]["message_id"] for t in telegram[1:]] == [101, 101]
    assert "thread_ts" not in slack[0]
    assert [s["thread_ts"] for s in slack[1:]] == ["1700000000.000001"] * 2
