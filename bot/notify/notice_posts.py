"""Posting one rollback notice to one channel exactly once: the attempt is recorded before it is
sent, a retry first looks for the marked post (a lost answer never makes a second notice), a
public channel the bot is not in is joined, and every outcome is audited."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.adapters.slack.posts import find_marked, post_marker
from bot.adapters.slack.web import PERMANENT_ERRORS, SlackError
from storage.models import Rollback

if TYPE_CHECKING:
    from bot.deps import Deps

log = logging.getLogger("bot.notify.notifications")  # the notices' log lines, as before the split


def send_once(
    deps: Deps,
    rollback: Rollback,
    kind: str,
    channel: str,
    text: str,
    thread_ts: str | None = None,
    broadcast: bool = False,
) -> bool:
    """Post once (in ``thread_ts``'s thread when given); True when it failed and is worth
    retrying. The first attempt is recorded (a delivery key) before it is sent; a later one
    looks for the marked post first, so a lost answer never makes a second notice."""
    assert rollback.id is not None
    marker = post_marker(kind, rollback.id, rollback.created_at, channel)
    is_retry = not deps.repo.record_delivery(f"tried:{kind}:{rollback.id}:{channel}", deps.clock())
    if is_retry and (found := find_marked(deps.slack, channel, marker, thread_ts)):
        _audit(deps, rollback, kind, channel, found, None)
        return False
    try:
        resp = _post_joining(deps, channel, text, thread_ts, broadcast, marker)
    except SlackError as exc:
        error = str(exc.error or "unknown")
        if error not in PERMANENT_ERRORS:
            log.warning("rollback #%s: %s to %s failed: %s", rollback.id, kind, channel, error)
            return True
        log.error(
            "rollback #%s: %s to %s refused for good: %s (fix the channel or the app's"
            " scopes; not retried)",
            rollback.id,
            kind,
            channel,
            error,
        )
        _audit(deps, rollback, f"{kind}.failed", channel, None, error)
        return False
    except Exception as exc:  # a timeout or a refused connection: Slack may be back soon
        log.warning("rollback #%s: %s to %s failed: %r", rollback.id, kind, channel, exc)
        return True
    _audit(deps, rollback, kind, channel, str(resp.get("ts")), None)
    return False


def _post_joining(
    deps: Deps,
    channel: str,
    text: str,
    thread_ts: str | None,
    broadcast: bool,
    marker: dict[str, Any],
) -> dict[str, object]:
    def post() -> dict[str, Any]:
        return deps.slack.chat_postMessage(
            channel=channel,
            text=text,
            unfurl_links=False,
            thread_ts=thread_ts,
            reply_broadcast=True if thread_ts and broadcast else None,
            metadata=marker,
        )

    try:
        resp = post()
    except SlackError as exc:
        if exc.error != "not_in_channel":
            raise
        # a public channel the bot was never added to: join it, then try once more
        deps.slack.conversations_join(channel=channel)
        resp = post()
    return resp


def _audit(
    deps: Deps, rollback: Rollback, kind: str, channel: str, ts: str | None, error: str | None
) -> None:
    detail = {"error": error} if error else {}
    deps.audit(kind, rollback, channel_id=channel, message_ts=ts, **detail)
