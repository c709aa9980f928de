"""The one progress message per rollback, edited in place, with step details in its thread.

``chat.update`` is a Tier 3 method (about 50 calls a minute per workspace), so edits do not go
out when the engine reports a change: a change only marks the rollback dirty, and one editor
thread spends a shared token bucket on the dirty messages — final states first, then the one
that has waited longest — always sending the latest state. However many rollbacks run, the
workspace sees at most the budget, and every message ends in its final state. Slack being down
never fails a rollback: errors are logged and the message stays dirty for the next round — unless
Slack says the message can never be edited (deleted, channel gone or archived, token revoked):
then it is given up once, loudly, instead of being retried every second for ever. What is kept
per rollback is forgotten once its final state is shown, so memory does not grow with history.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from bot.adapters.slack.posts import find_marked, post_marker
from bot.adapters.slack.web import PERMANENT_ERRORS, SlackClient, SlackError
from bot.catalog.load import Catalog
from bot.notify import limits
from bot.notify.blocks import FREE_TEXT_CHARS, escape, manual_gate_message, progress_message
from bot.notify.pacing import (
    BURST,
    EDITS_PER_MINUTE,
    MIN_EDIT_INTERVAL_SECONDS,
    EditBudget,
    shown_time,
)
from bot.regions.progress import region_blocks
from bot.rollback.lifecycle import TERMINAL
from storage.models import Rollback
from storage.repository import Repository

log = logging.getLogger(__name__)

# Answers after which no retry of the post or edit can succeed: PERMANENT_ERRORS (channel, token,
# message content) plus chat.update's own "this message cannot be edited any more".
GIVE_UP_ERRORS = PERMANENT_ERRORS | {
    "message_not_found",
    "cant_update_message",
    "edit_window_closed",
}
# A reason or error too long for the message is cut there and read whole in the thread.
WHOLE_IN_THREAD = "_(the whole text is in the thread)_"
NOTE_TRIES = 4  # a thread note is posted again (after 0.5, 1, 2 s) while Slack's trouble may pass


class SlackProgress:
    def __init__(
        self,
        client: SlackClient,
        repo: Repository,
        catalog: Catalog,
        clock: Callable[[], datetime],
        *,
        edits_per_minute: float = EDITS_PER_MINUTE,
        burst: int = BURST,
    ) -> None:
        self.client, self.repo, self.catalog, self.clock = client, repo, catalog, clock
        self._budget = EditBudget(edits_per_minute, burst)
        self._cond = threading.Condition()
        self._dirty: dict[int, tuple[bool, float]] = {}  # id -> (is_final, dirty since)
        self._posting: set[int] = set()
        self._editing: int | None = None
        # Posts (the first message, thread notes) go out in order from one thread of their own:
        # the engine never waits on Slack.
        self._posts = ThreadPoolExecutor(max_workers=1, thread_name_prefix="progress-posts")
        self._posts_pending = 0
        self._last_edit: dict[int, float] = {}
        self._shown: dict[int, tuple[str, str]] = {}  # what the message reads now (text, blocks)
        # Messages Slack will never take (GIVE_UP_ERRORS) of rollbacks still running: their
        # changes are ignored until the final one, which forgets them.
        self._given_up: set[int] = set()
        self._unsure: set[int] = set()  # rollbacks whose first post may have landed unanswered
        self._notes_sent = 0  # numbers each thread note's marker
        self._started_at = clock()
        self.edit_times: list[float] = []  # monotonic time of every chat.update (for benchmarks)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._editor, name="progress-editor", daemon=True)
        self._thread.start()

    # --- what the engine calls -------------------------------------------------------------

    def changed(self, rollback_id: int, *, is_final: bool = False) -> None:
        with self._cond:
            if rollback_id in self._given_up:
                if is_final:
                    self._given_up.discard(rollback_id)
                return
        rollback = self.repo.get_rollback(rollback_id)
        if rollback is not None and rollback.progress_ts is None:
            self._post_later(self._post_first, rollback_id)
        with self._cond:
            was_final, since = self._dirty.get(rollback_id, (False, time.monotonic()))
            self._dirty[rollback_id] = (was_final or is_final, since)
            self._cond.notify_all()

    def gate(self, rollback_id: int, step_id: int, prompt: str) -> None:
        """A thread message with the Continue button of a manual gate."""
        self.note(
            rollback_id, f":raised_hand: {prompt}", blocks=manual_gate_message(prompt, step_id)
        )

    def note(self, rollback_id: int, text: str, blocks: list[Any] | None = None) -> None:
        """A detail line in the progress message's thread (sent in order, in the background)."""
        self._post_later(self._send_note, rollback_id, text, blocks)

    def _post_later(self, fn: Callable[..., object], *args: Any) -> None:
        with self._cond:
            self._posts_pending += 1
        self._posts.submit(self._run_post, fn, *args)

    def _run_post(self, fn: Callable[..., object], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("progress post failed")
        finally:
            with self._cond:
                self._posts_pending -= 1
                self._cond.notify_all()

    def _send_note(self, rollback_id: int, text: str, blocks: list[Any] | None) -> None:
        rollback = self.repo.get_rollback(rollback_id)
        if rollback is not None and rollback.progress_ts is None:
            if not self._post_first(rollback_id):
                return
            rollback = self.repo.get_rollback(rollback_id)
        if rollback is None or rollback.progress_ts is None:
            return
        channel, thread = self._channel(rollback), rollback.progress_ts
        with self._cond:
            self._notes_sent += 1
            number = self._notes_sent
        marker = post_marker("note", rollback_id, rollback.created_at, number)
        for attempt in range(NOTE_TRIES):  # a note that passing trouble drops is a lost fact
            if attempt and find_marked(self.client, channel, marker, thread) is not None:
                return  # the last try landed; only its answer was lost
            try:
                self.client.chat_postMessage(
                    channel=channel,
                    thread_ts=thread,
                    text=limits.message_text(text),
                    blocks=limits.fit_blocks(blocks) if blocks else None,
                    unfurl_links=False,
                    metadata=marker,
                )
                return
            except Exception as exc:  # Slack trouble never stops a rollback
                log.warning("rollback #%d: thread note not posted: %s", rollback_id, exc)
                if _give_up_error(exc) or self._stop.wait(min(8.0, 0.5 * 2**attempt)):
                    return

    def anchor(self, rollback_id: int) -> str | None:
        """The ts of the progress message, the one top-level message of a rollback in its
        channel, posted now if it is not yet: notices about the rollback go in its thread.
        None when Slack did not take it (the caller then posts at the top level)."""
        rollback = self.repo.get_rollback(rollback_id)
        if rollback is not None and rollback.progress_ts is None:
            self._post_first(rollback_id)
            rollback = self.repo.get_rollback(rollback_id)
        return rollback.progress_ts if rollback is not None else None

    def flush(self, timeout: float) -> bool:
        """Wait until every dirty message has been edited (tests, console, shutdown)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._dirty and self._editing is None and not self._posts_pending,
                timeout=timeout,
            )

    # --- internals ---------------------------------------------------------------------------

    def _channel(self, rollback: Any) -> str:
        service = self.catalog.target_of(rollback.service)
        return str(rollback.channel_id or (service.channel if service else ""))

    def _render(self, rollback_id: int) -> tuple[Any, str, list[Any]] | None:
        rollback = self.repo.get_rollback(rollback_id)
        if rollback is None:
            return None
        service = self.catalog.target_of(rollback.service)  # a rehearsal: its staging twin
        steps, now = self.repo.list_steps(rollback_id), shown_time(rollback, self.clock())
        text, blocks = progress_message(
            rollback,
            steps,
            sla_minutes=service.sla_minutes if service else 15,
            now=now,
            more=WHOLE_IN_THREAD,
            region_blocks=region_blocks(steps, service, now),  # multi-region: one per region
        )
        return rollback, text, blocks

    def _post_first(self, rollback_id: int) -> bool:
        """Post the progress message unless it is posted; False once Slack will never take it."""
        with self._cond:  # one poster per message; a second caller waits for the first
            while rollback_id in self._posting:
                self._cond.wait(1.0)
            if rollback_id in self._given_up:
                return False
            self._posting.add(rollback_id)
        rollback = None
        try:
            rendered = self._render(rollback_id)
            if rendered is None or rendered[0].progress_ts is not None:
                return True
            rollback, text, blocks = rendered
            channel = self._channel(rollback)
            marker = post_marker("progress", rollback.id, rollback.created_at)
            ts = (
                self._posted_before(rollback, channel, marker)
                if self._is_unsure(rollback)
                else None
            )
            if ts is None:
                resp = self.client.chat_postMessage(
                    channel=channel, text=text, blocks=blocks, metadata=marker
                )
                ts = str(resp["ts"])
            self.repo.set_rollback_progress_ts(rollback_id, ts)
            if len(rollback.reason or "") > FREE_TEXT_CHARS:  # the message shows only its start
                self._send_note(rollback_id, f"*Reason* (whole): {escape(rollback.reason)}", None)
            with self._cond:  # the post counts as the first edit, for pacing and sameness
                self._last_edit[rollback_id] = time.monotonic()
                self._shown[rollback_id] = (text, json.dumps(blocks, sort_keys=True))
        except Exception as exc:  # Slack trouble never stops a rollback
            if rollback is not None and (error := _give_up_error(exc)):
                self._give_up(rollback_id, rollback.status in TERMINAL, "posted", error)
                return False
            with self._cond:  # Slack may have taken it all the same: look before posting again
                self._unsure.add(rollback_id)
            log.warning("rollback #%d: progress message not posted: %s", rollback_id, exc)
        finally:
            with self._cond:
                self._posting.discard(rollback_id)
                self._cond.notify_all()
        return True

    def _is_unsure(self, rollback: Rollback) -> bool:
        """Whether the message may exist already: an earlier post failed without an answer (a
        5xx, a timeout), or the rollback began before this process (a crash right after a post
        can lose its ts)."""
        assert rollback.id is not None
        with self._cond:
            if rollback.id in self._unsure:
                return True
        return rollback.created_at < self._started_at

    def _posted_before(
        self, rollback: Rollback, channel: str, marker: dict[str, Any]
    ) -> str | None:
        """The ts of this rollback's progress message if Slack holds it, else None."""
        ts = find_marked(self.client, channel, marker)
        if ts is not None:
            log.info("rollback #%d: its progress message was posted already", rollback.id)
        return ts

    def _give_up(self, rollback_id: int, is_final: bool, what: str, error: str) -> None:
        """Slack will never take this message: say so once, stop trying, forget the rollback.
        Until its final change arrives, later changes of a running rollback are ignored."""
        log.error(
            "rollback #%d: progress message cannot be %s (Slack: %s); not trying again",
            rollback_id,
            what,
            error,
        )
        with self._cond:
            newer = self._dirty.pop(rollback_id, None)
            self._shown.pop(rollback_id, None)
            self._last_edit.pop(rollback_id, None)
            if not is_final and not (newer is not None and newer[0]):
                self._given_up.add(rollback_id)
            self._cond.notify_all()

    def _forget_if_final(self, rollback: Any) -> None:
        """The final state is shown: nothing about this rollback needs keeping any more."""
        if rollback.status not in TERMINAL:
            return
        with self._cond:
            if rollback.id not in self._dirty:  # unless a newer change waits for its edit
                self._shown.pop(rollback.id, None)
                self._last_edit.pop(rollback.id, None)

    def tracked(self) -> set[int]:
        """Rollbacks this editor keeps anything about (bounded: only unfinished ones stay)."""
        with self._cond:
            return set(self._dirty) | set(self._shown) | set(self._last_edit) | self._given_up

    @property
    def is_running(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout: float = 2.0) -> None:
        """Deliver what is pending for up to ``timeout`` seconds, then stop the editor and the
        poster (a stopped bot leaves no thread behind still talking to Slack)."""
        self.flush(timeout)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout)
        self._posts.shutdown(wait=False, cancel_futures=True)

    def _editor(self) -> None:
        while not self._stop.is_set():
            try:
                self._edit_next()
            except Exception:  # the editor must outlive any one bad round
                log.exception("progress editor round failed")
                self._stop.wait(1.0)

    def _eligible_at(self, rollback_id: int) -> float:
        is_final, _ = self._dirty[rollback_id]
        last = self._last_edit.get(rollback_id)
        return 0.0 if is_final or last is None else last + MIN_EDIT_INTERVAL_SECONDS

    def _edit_next(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: bool(self._dirty) or self._stop.is_set())
            if self._stop.is_set():
                return
            wake = min(self._eligible_at(i) for i in self._dirty)
            if wake > time.monotonic():  # nothing may be edited yet: wait for the first one
                self._cond.wait(wake - time.monotonic())
                return
        self._budget.take(self._stop)
        if self._stop.is_set():
            return
        with self._cond:
            now = time.monotonic()
            ready = [i for i in self._dirty if self._eligible_at(i) <= now]
            if not ready:
                return
            rollback_id = min(ready, key=lambda i: (not self._dirty[i][0], self._dirty[i][1]))
            is_final, since = self._dirty.pop(rollback_id)
            self._editing = rollback_id
        if not self._edit(rollback_id, is_final):
            with self._cond:  # keep it dirty; try again on a later round
                old = self._dirty.get(rollback_id, (False, since))
                self._dirty[rollback_id] = (old[0] or is_final, since)
            self._stop.wait(1.0)
        with self._cond:
            self._editing = None
            self._cond.notify_all()

    def _edit(self, rollback_id: int, is_final: bool) -> bool:
        rendered = self._render(rollback_id)
        if rendered is None:
            return True
        rollback, text, blocks = rendered
        if rollback.progress_ts is None:
            if not self._post_first(rollback_id):
                return True  # Slack will never take it: given up, not tried again
            rendered = self._render(rollback_id)
            if rendered is None or rendered[0].progress_ts is None:
                return False  # Slack refused the post: stays dirty, tried again later
            rollback, text, blocks = rendered
            if not is_final:  # just posted: the next edit waits its turn like any other
                with self._cond:
                    self._dirty.setdefault(rollback_id, (False, time.monotonic()))
                    self._budget.give_back()
                return True
        shown = (text, json.dumps(blocks, sort_keys=True))
        if self._shown.get(rollback_id) == shown:
            self._budget.give_back()  # nothing to send: keep the token
            self._forget_if_final(rollback)
            return True
        try:
            self.client.chat_update(
                channel=self._channel(rollback), ts=rollback.progress_ts, text=text, blocks=blocks
            )
        except Exception as exc:  # e.g. SlackError, a timeout; retried on a later round
            if error := _give_up_error(exc):
                is_over = is_final or rollback.status in TERMINAL
                self._give_up(rollback_id, is_over, "updated", error)
                return True
            log.warning("rollback #%d: progress message not updated: %s", rollback_id, exc)
            return False
        self.edit_times.append(time.monotonic())
        with self._cond:
            self._last_edit[rollback_id] = time.monotonic()
            self._shown[rollback_id] = shown
        self._forget_if_final(rollback)
        return True


def _give_up_error(exc: Exception) -> str | None:
    """Slack's error code when no retry can succeed (GIVE_UP_ERRORS), else None."""
    if not isinstance(exc, SlackError):
        return None
    error = exc.error
    return str(error) if error in GIVE_UP_ERRORS else None
