"""The one progress message per rollback, edited in place, with step details in its thread.

``chat.update`` is a Tier 3 method (about 50 a minute), so edits are throttled per rollback and
coalesced: a change inside the interval marks the message dirty and one trailing edit carries
the latest state. Slack being down never fails a rollback: errors are logged and retried on the
next change.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.catalog import Catalog
from bot.notify.blocks import manual_gate_message, progress_message
from storage.repository import Repository

log = logging.getLogger(__name__)

MIN_EDIT_INTERVAL_SECONDS = 1.0


class SlackProgress:
    def __init__(
        self,
        client: WebClient,
        repo: Repository,
        catalog: Catalog,
        clock: Callable[[], datetime],
        *,
        min_interval: float = MIN_EDIT_INTERVAL_SECONDS,
    ) -> None:
        self.client, self.repo, self.catalog, self.clock = client, repo, catalog, clock
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._last_edit: dict[int, float] = {}
        self._last_text: dict[int, str] = {}
        self._timers: dict[int, threading.Timer] = {}
        self.edits = 0  # counted for the benchmark's Tier-3 budget

    def changed(self, rollback_id: int, *, is_final: bool = False) -> None:
        with self._lock:
            wait = self._last_edit.get(rollback_id, 0.0) + self.min_interval - time.monotonic()
            if wait > 0 and not is_final:
                if rollback_id not in self._timers:  # coalesce: one trailing edit
                    timer = threading.Timer(wait, self._flush, args=(rollback_id,))
                    timer.daemon = True
                    self._timers[rollback_id] = timer
                    timer.start()
                return
            self._cancel_timer(rollback_id)
        self._edit(rollback_id)

    def _flush(self, rollback_id: int) -> None:
        with self._lock:
            self._timers.pop(rollback_id, None)
        self._edit(rollback_id)

    def _cancel_timer(self, rollback_id: int) -> None:
        timer = self._timers.pop(rollback_id, None)
        if timer is not None:
            timer.cancel()

    def _edit(self, rollback_id: int) -> None:
        rollback = self.repo.get_rollback(rollback_id)
        if rollback is None:
            return
        service = self.catalog.get(rollback.service)
        steps = self.repo.list_steps(rollback_id)
        sla = service.sla_minutes if service else 15
        text, blocks = progress_message(rollback, steps, sla_minutes=sla, now=self.clock())
        with self._lock:
            if self._last_text.get(rollback_id) == repr(blocks):
                return
        channel = rollback.channel_id or (service.channel if service else "")
        try:
            if rollback.progress_ts is None:
                resp = self.client.chat_postMessage(channel=channel, text=text, blocks=blocks)
                self.repo.set_rollback_progress_ts(rollback_id, str(resp["ts"]))
            else:
                self.client.chat_update(
                    channel=channel, ts=rollback.progress_ts, text=text, blocks=blocks
                )
        except SlackApiError as exc:
            log.warning("rollback #%d: progress message not updated: %s", rollback_id, exc)
            return
        with self._lock:
            self.edits += 1
            self._last_edit[rollback_id] = time.monotonic()
            self._last_text[rollback_id] = repr(blocks)

    def gate(self, rollback_id: int, step_id: int, prompt: str) -> None:
        """A thread message with the Continue button of a manual gate."""
        self.note(
            rollback_id, f":raised_hand: {prompt}", blocks=manual_gate_message(prompt, step_id)
        )

    def note(self, rollback_id: int, text: str, blocks: list[Any] | None = None) -> None:
        """A detail line in the progress message's thread."""
        rollback = self.repo.get_rollback(rollback_id)
        if rollback is None:
            return
        if rollback.progress_ts is None:
            self.changed(rollback_id, is_final=True)
            rollback = self.repo.get_rollback(rollback_id)
        if rollback is None or rollback.progress_ts is None:
            return
        service = self.catalog.get(rollback.service)
        channel = rollback.channel_id or (service.channel if service else "")
        try:
            self.client.chat_postMessage(
                channel=channel,
                thread_ts=rollback.progress_ts,
                text=text,
                blocks=blocks,
                unfurl_links=False,
            )
        except SlackApiError as exc:
            log.warning("rollback #%d: thread note not posted: %s", rollback_id, exc)
