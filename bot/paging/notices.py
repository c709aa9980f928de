"""Paging's Slack notices: each is ``page.post`` due work keyed per notice, so it is posted once
and retried until Slack takes it, in the thread of the rollback's progress message."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.adapters.slack.posts import find_marked, post_marker
from bot.adapters.slack.web import PERMANENT_ERRORS, SlackError
from bot.notify.threads import anchor_of
from bot.paging.levels import NOT_PAGED, shown_contacts
from bot.paging.messages import closed_notice
from bot.rollback.lifecycle import DueKind, page_post_key
from bot.runtime.due import RetryLater
from bot.runtime.logs import mask_phone
from storage.models import DueWork, Rollback
from storage.repo.records import NewWork

if TYPE_CHECKING:
    from bot.deps import Deps

log = logging.getLogger(__name__)

POST_TRIES = 12  # 5 s doubling to 5 min: about 45 minutes of Slack trouble


def notice_key(rollback_id: int | str | None, reason: str, *what: object) -> str:
    """The key of one paging notice: ``<owner>:<ladder>:<what>…`` (the owner first, a rollback
    id or ``q<release id>``: the notice finds its thread by it)."""
    return ":".join(str(part) for part in (rollback_id, reason, *what))


def channel_of(deps: Deps, rollback: Rollback) -> str | None:
    service = deps.catalog.get(rollback.service)
    return rollback.channel_id or (service.channel if service else None)


def notify(
    deps: Deps,
    key: str,
    channel: str | None,
    text: str,
    blocks: list[Any] | None = None,
    page_ids: Sequence[int] = (),
) -> bool:
    """Post ``text`` durably: stored as ``page.post`` due work under ``key`` (once; False for a
    repeat), posted right away in the background and retried until Slack takes it."""
    if channel is None:
        return False
    if not deps.due.schedule_all([post_work(key, channel, text, deps.clock(), blocks, page_ids)]):
        return False
    deps.kick_due_work()
    return True


def post_work(
    key: str,
    channel: str,
    text: str,
    now: datetime,
    blocks: list[Any] | None = None,
    page_ids: Sequence[int] = (),
) -> NewWork:
    """The ``page.post`` item :func:`notify` stores (also scheduled inside other transactions)."""
    payload = {"channel": channel, "text": text, "blocks": blocks, "page_ids": list(page_ids)}
    return NewWork(DueKind.PAGE_POST, page_post_key(key), now, payload)


def replace_notice_buttons(
    deps: Deps, rollback_id: int, reason: str, label: str, footer: str
) -> None:
    """Replace the Acknowledge buttons of a ladder's notices with ``footer`` (best effort: a
    button left behind only answers "already acknowledged")."""
    pages = deps.repo.list_pages(rollback_id, reason)
    notices = {(p.notice_channel, p.notice_ts) for p in pages if p.notice_channel and p.notice_ts}
    for channel, ts in sorted(notices, key=lambda n: str(n[1])):
        # as the notice itself said
        paged = shown_contacts(
            [p for p in pages if p.notice_ts == ts and p.status not in NOT_PAGED]
        )
        text = f":pager: Paged for *{label}*: {paged}"
        try:
            deps.slack.chat_update(
                channel=channel, ts=ts, text=text, blocks=closed_notice(text, footer)
            )
        except Exception as exc:  # the button merely stays; pressing it says "already"
            log.warning("page notice %s not updated: %s", ts, mask_phone(str(exc)))


def _notice_thread(deps: Deps, key: str, channel: str) -> tuple[str | None, bool]:
    """A paging notice goes in the thread of its rollback's progress message (keys read
    ``page-post:<rollback id>:…``), or of its guard question's guard message (``q<release
    id>``); one saying nobody answered is also shown in the channel."""
    owner = key.removeprefix(page_post_key("")).split(":", 1)[0]
    if owner.startswith("q") and owner[1:].isdigit():
        release = deps.repo.guarded_release(int(owner[1:]))
        thread_ts = release.message_ts if release and release.channel_id == channel else None
        return thread_ts, bool(thread_ts) and key.endswith(":unacknowledged")
    rollback = deps.repo.get_rollback(int(owner)) if owner.isdigit() else None
    if rollback is None:
        return None, False
    thread_ts = anchor_of(deps, rollback, channel)
    return thread_ts, bool(thread_ts) and key.endswith(":unacknowledged")


def post_notice(deps: Deps, item: DueWork) -> None:
    """``page.post``: one paging notice to Slack; raises RetryLater until Slack takes it."""
    payload = item.payload
    channel = str(payload["channel"])
    thread_ts, broadcast = _notice_thread(deps, item.key, channel)
    marker = post_marker("page_notice", item.key)
    # an earlier run may have posted it and lost the answer (a 500, a crash): look first
    found = find_marked(deps.slack, channel, marker, thread_ts) if item.tries > 1 else None
    try:
        answer = (
            {"ts": found}
            if found
            else deps.slack.chat_postMessage(
                channel=channel,
                text=str(payload["text"]),
                blocks=payload.get("blocks"),
                unfurl_links=False,
                thread_ts=thread_ts,
                reply_broadcast=broadcast or None,
                metadata=marker,
            )
        )
    except Exception as exc:
        error = exc.error if isinstance(exc, SlackError) else None
        why = str(error or type(exc).__name__)
        if error in PERMANENT_ERRORS or item.tries >= POST_TRIES:
            log.error("paging notice %s never posted in %s: %s", item.key, channel, why)
            return
        log.warning("paging notice %s not posted yet (%s); retrying", item.key, why)
        raise RetryLater(f"Slack: {why}", min(300, 5 * 2 ** (item.tries - 1))) from None
    page_ids = [int(i) for i in payload.get("page_ids") or ()]
    ts = str(answer.get("ts") or "")
    if page_ids and ts:
        deps.repo.set_page_notice(page_ids, channel, ts)
