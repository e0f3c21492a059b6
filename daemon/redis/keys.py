"""Redis key names. Contains no business logic.

Every key carries the same hash tag ``{prefix}``, so in Redis Cluster they all live in one slot
and multi-key operations (Lua publish, MULTI) stay legal.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "feedwatch"

    @property
    def tag(self) -> str:
        return "{" + self.prefix + "}"

    # -- the alert stream and delivery -------------------------------------------------------
    @property
    def alerts(self) -> str:
        """The alert stream (XADD by pollers, XREADGROUP by notifier workers)."""
        return f"{self.tag}:alerts"

    @property
    def dead(self) -> str:
        """The dead-letter stream."""
        return f"{self.tag}:alerts:dead"

    group: str = "delivery"

    def alert(self, alert_id: str) -> str:
        """Exists once an alert was published: makes publishing idempotent."""
        return f"{self.tag}:alert:{alert_id}"

    def delivered(self, alert_id: str) -> str:
        """Set of notifier names that delivered this alert (recorded before XACK)."""
        return f"{self.tag}:delivered:{alert_id}"

    def attempts(self, alert_id: str) -> str:
        """Hash notifier → attempts so far for this alert."""
        return f"{self.tag}:attempts:{alert_id}"

    # -- digests (alerts/digest.py); notifier names hold no ':' so these cannot collide ------
    def digest(self, notifier: str) -> str:
        """Hash alert id → buffered record: the alerts waiting for ``notifier``'s next digest."""
        return f"{self.tag}:digest:{notifier}"

    def digest_since(self, notifier: str) -> str:
        """Epoch ms at which the first alert of the current buffer arrived (opens the window)."""
        return f"{self.tag}:digest:{notifier}:since"

    def digest_sending(self, notifier: str) -> str:
        """Hash alert id → record: the batch taken from the buffer and being sent."""
        return f"{self.tag}:digest:{notifier}:sending"

    def digest_state(self, notifier: str) -> str:
        """Hash: ``attempts``, ``error``, ``next_at``, ``dead`` of the batch being sent."""
        return f"{self.tag}:digest:{notifier}:state"

    def digest_lock(self, notifier: str) -> str:
        """Owner token (``SET NX PX``): the one flusher allowed to send this notifier's batch."""
        return f"{self.tag}:digest:{notifier}:lock"

    # -- threads (alerts/threads.py) ---------------------------------------------------------
    def thread(self, notifier: str, first_alert_id: str) -> str:
        """Where ``notifier`` posted a story's first alert (a Telegram message id…), so that
        its follow-ups can reply to it."""
        return f"{self.tag}:thread:{notifier}:{first_alert_id}"

    # -- feeds -------------------------------------------------------------------------------
    def feed_state(self, feed: str) -> str:
        """Hash: etag, last_modified, body_hash, error streak, last outcome, next poll…"""
        return f"{self.tag}:feed:{feed}"

    def seen(self, feed: str) -> str:
        """Sorted set item id → first-seen epoch: the "is this new?" memory of one feed."""
        return f"{self.tag}:seen:{feed}"

    def new_counts(self, feed: str) -> str:
        """Hash hour-epoch → new items that hour (for "new in the last 24h")."""
        return f"{self.tag}:newcount:{feed}"

    def lease(self, feed: str) -> str:
        """Owner of the poll of the feed running now (``daemon/poll/leases.py``)."""
        return f"{self.tag}:lease:{feed}"

    def claim(self, feed: str) -> str:
        """``"<since ms> <length ms> <owner>"``: polled this interval (daemon/poll/leases.py)."""
        return f"{self.tag}:claim:{feed}"

    # -- process-level -----------------------------------------------------------------------
    @property
    def sentinel(self) -> str:
        """Set once when state is first written; its absence on a used Redis means data loss."""
        return f"{self.tag}:sentinel"

    @property
    def pollers(self) -> str:
        """Sorted set identity → last beat: the live polling processes (daemon/poll/peers.py)."""
        return f"{self.tag}:pollers"

    def heartbeat(self, identity: str) -> str:
        return f"{self.tag}:health:{identity}"

    # -- stories (daemon/stories/index.py, daemon/publish/stream.py) --------------------------
    def story_record(self, story_id: str, block: int, size: int) -> tuple[str, int]:
        """(string key, byte offset) of a story's fixed-size record: the id's first 6 hex
        digits are the hour it started, the last 6 its number in that hour
        (``daemon.stories.lua`` draws the layout)."""
        hour, number = int(story_id[:6], 16), int(story_id[6:12], 16)
        return f"{self.tag}:story:r:{hour}:{number // block}", (number % block) * size

    @property
    def story_feeds(self) -> str:
        """Hash ``n:<feed>`` → feed number, ``i:<number>`` → feed (story sources)."""
        return f"{self.tag}:story:feeds"

    @property
    def story_version(self) -> str:
        """Counter bumped by every story-index commit that wrote."""
        return f"{self.tag}:story:ver"

    def story_df(self, slice_number: int) -> str:
        """Hash: term → items of that time slice that had it, ``n`` → items (story profiles'
        document frequencies, ``daemon.stories.lua``)."""
        return f"{self.tag}:story:df:{slice_number}"

    def story_held(self, story_id: str) -> str:
        """Hash rule id → held first match (``min_sources`` not reached yet)."""
        return f"{self.tag}:story:held:{story_id}"

    def throttle(self, rule_id: str) -> str:
        """Epoch seconds of the rule's last new alert (``throttle``)."""
        return f"{self.tag}:throttle:{rule_id}"

    def throttle_held(self, rule_id: str) -> str:
        """Counter: new alerts of the rule held back by its throttle since its last alert."""
        return f"{self.tag}:throttle:{rule_id}:held"

    # -- silences (daemon/publish/silence.py) -----------------------------------------------
    @property
    def silences(self) -> str:
        """Hash silence id → JSON record."""
        return f"{self.tag}:silences"

    @property
    def silence_ends(self) -> str:
        """Sorted set silence id → end (epoch seconds): for purging old silences."""
        return f"{self.tag}:silences:ends"

    def feed_failing(self, feed: str) -> str:
        """Epoch seconds of the first failed poll of the feed's current failure episode
        (deleted by its next successful poll): ``daemon/poll/health.py``."""
        return f"{self.tag}:feedhealth:{feed}"

    # -- the item archive (daemon/poll/archive.py) ------------------------------------------
    @property
    def archive_items(self) -> str:
        """Hash ``<feed>:<item id>`` → the archived item as compact JSON."""
        return f"{self.tag}:archive:items"

    @property
    def archive_seen(self) -> str:
        """Sorted set ``<feed>:<item id>`` → epoch seconds it was first archived."""
        return f"{self.tag}:archive:seen"

    @property
    def archive_bytes(self) -> str:
        """The archive's approximate size in bytes (kept by its Lua step)."""
        return f"{self.tag}:archive:bytes"

    # -- WebSub (daemon/websub/store.py) -----------------------------------------------------
    def websub_sub(self, feed: str) -> str:
        """Hash: the feed's WebSub subscription (hub, topic, callback token, secret, state,
        lease…)."""
        return f"{self.tag}:websub:sub:{feed}"

    def websub_links(self, feed: str) -> str:
        """Hash: ``hubs`` (one per line) and ``self``, as the feed's last poll found them."""
        return f"{self.tag}:websub:links:{feed}"

    @property
    def websub_tokens(self) -> str:
        """Hash callback token → feed name: which feed a callback URL belongs to."""
        return f"{self.tag}:websub:tokens"

    @property
    def websub_feeds(self) -> str:
        """Set of feeds with WebSub links or a subscription: what the subscriber looks at."""
        return f"{self.tag}:websub:feeds"
