"""Publishing the review: a canvas where the workspace allows, else a Markdown file in the thread,
always ``GET /reviews/{token}``; then a reminder while the root cause is unwritten.

The web page needs no login, so its address is the secret: ``token`` is ``{rollback_id}-{mac}``,
``mac`` being 128 bits of HMAC-SHA256 of the id under a key derived from ``SLACK_SIGNING_SECRET``
(no column, nothing to migrate; rotating the signing secret revokes every link). Only the bot
can make one, and it posts it only where the review goes (the progress thread, the App Home,
``/rollback review``). Anything else under ``/reviews/`` — a wrong token, the bare id — is the
same plain 404, which says nothing about whether that rollback exists.

Durable and idempotent: a finished rollback schedules ``review.publish`` (one key per rollback);
the handler stores the document first, records each Slack effect (canvas id, file id, links
posted) as soon as it happened, and skips what is recorded when it runs again. The reminder
(``review.remind`` at finish + ``review_reminder_hours``) reads a canvas back with
``canvases.getContent``; a file cannot be read back, so there the "Root cause written" button
under the link is what stops the reminder (it is offered on the canvas path too).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from markdown_it import MarkdownIt

from bot.adapters.slack.lookups import UserNames
from bot.adapters.slack.posts import find_marked, post_marker
from bot.adapters.slack.web import SlackError
from bot.deps import Deps, Route
from bot.notify.blocks import button, section
from bot.review.document import build_review, root_cause_is_written
from bot.review.facts import gather, with_names
from bot.rollback.lifecycle import TERMINAL, DueKind, review_publish_key, review_remind_key
from bot.runtime.due import RetryLater
from storage.models import DueWork, Review, Rollback

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

ANNOUNCED = "review.announced"  # audit kind: the link was posted in this channel
ROOT_CAUSE_WRITTEN_ACTION = "review_root_cause_written"
# Answers meaning "this workspace (plan, token, scopes) will not take a canvas": use a file.
CANVAS_REFUSALS = frozenset(
    {
        "free_teams_cannot_create_non_tabbed_canvases",
        "not_allowed",
        "not_allowed_token_type",
        "missing_scope",
        "restricted_action",
        "team_not_paid",
        "paid_only",
    }
)
PROGRESS_WAIT_TRIES = 6  # then publish without the thread rather than never


_LINK_KEY_LABEL = b"rollback-bot review links v1"  # keeps the key apart from Slack's use of it


def _mac(deps: Deps, rollback_id: int) -> str:
    """The unguessable part of a review's address (128 bits of HMAC-SHA256, URL-safe)."""
    secret = deps.settings.slack_signing_secret
    assert secret is not None  # build_app refuses to build without it
    key = hmac.new(secret.get_secret_value().encode(), _LINK_KEY_LABEL, hashlib.sha256).digest()
    mac = hmac.new(key, f"review:{rollback_id}".encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def review_token(deps: Deps, rollback_id: int) -> str:
    return f"{rollback_id}-{_mac(deps, rollback_id)}"


def review_path(deps: Deps, rollback_id: int) -> str:
    return f"/reviews/{review_token(deps, rollback_id)}"


def review_url(deps: Deps, rollback_id: int) -> str | None:
    base = deps.settings.public_url
    return f"{base.rstrip('/')}{review_path(deps, rollback_id)}" if base else None


def _rollback_id_of(deps: Deps, path: str) -> int | None:
    """The rollback id of ``/reviews/{token}`` when the token is right; else None."""
    token = path.removeprefix("/reviews/")
    rollback, _, mac = token.partition("-")
    if not (rollback.isascii() and rollback.isdigit()) or len(rollback) > 18 or not mac:
        return None
    rollback_id = int(rollback)
    expected = review_token(deps, rollback_id)  # also refuses leading zeros: one address each
    return rollback_id if hmac.compare_digest(expected.encode(), token.encode()) else None


class ReviewListener:
    """Engine listener: a finished rollback gets its review through durable due work."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def rollback_started(self, rollback: Rollback) -> None:
        """Nothing to review until it ends."""

    def rollback_finished(self, rollback: Rollback) -> None:
        assert rollback.id is not None
        key, payload = review_publish_key(rollback.id), {"rollback_id": rollback.id}
        self.deps.due.schedule(DueKind.REVIEW_PUBLISH, key, self.deps.clock(), payload)


class ReviewPublisher:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.names = UserNames(deps.slack)
        self._team_id: str | None = None

    # --- review.publish -------------------------------------------------------------------

    def publish(self, item: DueWork) -> None:
        deps, rollback_id = self.deps, int(item.payload["rollback_id"])
        rollback = deps.repo.get_rollback(rollback_id)
        if rollback is None or rollback.status not in TERMINAL:
            log.warning("review of rollback #%d: not finished, nothing to publish", rollback_id)
            return
        if rollback.channel_id and not rollback.progress_ts and item.tries < PROGRESS_WAIT_TRIES:
            raise RetryLater("the progress message is not posted yet", 5)
        review = deps.repo.get_review(rollback_id)
        if review is None:
            facts = gather(deps.repo, deps.catalog, rollback_id)
            assert facts is not None
            facts = with_names(facts, self.names.name)
            review = deps.repo.create_review(rollback_id, build_review(facts), deps.clock())
        if review.published_via is None:
            review = self._publish(rollback, review)
        if review.announced_at is None:
            self._announce(rollback, review, is_retry=item.tries > 1)
            review = deps.repo.update_review(rollback_id, deps.clock(), announced_at=deps.clock())
        service = deps.catalog.get(rollback.service)
        hours = service.review_reminder_hours if service else 24.0
        finished = rollback.finished_at or deps.clock()
        deps.due.schedule(
            DueKind.REVIEW_REMIND,
            review_remind_key(rollback_id),
            finished + timedelta(hours=hours),
            {"rollback_id": rollback_id},
        )

    def _publish(self, rollback: Rollback, review: Review) -> Review:
        deps, rid = self.deps, review.rollback_id
        channels = [c for c in (rollback.channel_id, rollback.incident_channel_id) if c]
        if review.file_id is not None:  # uploaded already, the canvas was refused
            return self._publish_file(rollback, review, channels)
        title = f"Post-rollback review: {rollback.service} #{rid}"
        canvas_id = review.canvas_id
        if canvas_id is None:
            try:
                created = deps.slack.canvases_create(
                    title=title, document_content={"type": "markdown", "markdown": review.markdown}
                )
                canvas_id = str(created["canvas_id"])
                deps.repo.update_review(rid, deps.clock(), canvas_id=canvas_id)
            except SlackError as exc:
                error = exc.error
                if error not in CANVAS_REFUSALS:
                    raise  # Slack trouble: the due work retries later
                log.info("review #%d: no canvas (%s); uploading a Markdown file", rid, error)
                return self._publish_file(rollback, review, channels)
        if channels:
            try:
                deps.slack.canvases_access_set(
                    canvas_id=canvas_id, access_level="write", channel_ids=channels
                )
            except SlackError as exc:
                error = exc.error
                if error not in CANVAS_REFUSALS:
                    raise
                # a canvas nobody but the bot can open is no review: the file it is
                log.info("review #%d: canvas not shared (%s); uploading a file", rid, error)
                return self._publish_file(rollback, review, channels)
        permalink = f"{deps.slack_team_url.rstrip('/')}/docs/{self._team()}/{canvas_id}"
        return self._published(review, rollback, "canvas", permalink)

    def _publish_file(self, rollback: Rollback, review: Review, channels: list[str]) -> Review:
        """Upload once: the file id is stored before anything else may fail, and a retry that
        finds it does not upload again. The permalink is a nicety (files.info needs
        ``files:read``): without it the link message points at the thread and the web page."""
        deps, rid = self.deps, review.rollback_id
        file_id, permalink = review.file_id, None
        if file_id is None:
            uploaded = deps.slack.files_upload_v2(
                content=review.markdown,
                filename=f"rollback-{rid}-{rollback.service}-review.md",
                title=f"Post-rollback review: {rollback.service} #{rid}",
                channel=rollback.channel_id,
                thread_ts=rollback.progress_ts,
            )
            file = uploaded.get("file") or {}
            file_id, permalink = str(file["id"]), file.get("permalink")
            deps.repo.update_review(rid, deps.clock(), file_id=file_id)
        if not permalink:
            try:
                permalink = deps.slack.files_info(file=file_id)["file"].get("permalink")
            except SlackError as exc:
                log.warning(
                    "review #%d: no permalink for file %s (%s); linking the thread and web page",
                    rid,
                    file_id,
                    exc.error,
                )
        return self._published(review, rollback, "file", str(permalink or "") or None)

    def _published(
        self, review: Review, rollback: Rollback, via: str, permalink: str | None
    ) -> Review:
        """The review is out: how, where, and the link its announcements give."""
        return self.deps.repo.update_review(
            review.rollback_id,
            self.deps.clock(),
            published_via=via,
            channel_id=rollback.channel_id,
            thread_ts=rollback.progress_ts,
            permalink=permalink,
        )

    def _team(self) -> str:
        if self._team_id is None:
            self._team_id = str(self.deps.slack.auth_test().get("team_id") or "")
        return self._team_id

    def _announce(self, rollback: Rollback, review: Review, *, is_retry: bool) -> None:
        """Post the link in the progress thread and the incident channel; each post is audited
        with its channel, so a retry after one failed does not post the other again. A post
        whose answer was lost (Slack took it, then failed) is found by its marker on a retry."""
        deps = self.deps
        done = {
            e.channel_id for e in deps.repo.list_audit_events(ANNOUNCED, rollback_id=rollback.id)
        }
        text, blocks = link_message(deps, rollback, review)
        targets = [
            (rollback.channel_id, rollback.progress_ts),
            (rollback.incident_channel_id, None),
        ]
        for channel, thread_ts in targets:
            if not channel or channel in done:
                continue
            done.add(channel)
            marker = post_marker("review_link", rollback.id, channel)
            found = find_marked(deps.slack, channel, marker, thread_ts) if is_retry else None
            ts = found or deps.slack.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,
                text=text,
                blocks=blocks,
                unfurl_links=False,
                metadata=marker,
            ).get("ts")
            deps.audit(ANNOUNCED, rollback, channel_id=channel, message_ts=str(ts))

    # --- review.remind --------------------------------------------------------------------

    def remind(self, item: DueWork) -> None:
        deps, rollback_id = self.deps, int(item.payload["rollback_id"])
        review = deps.repo.get_review(rollback_id)
        rollback = deps.repo.get_rollback(rollback_id)
        if review is None or rollback is None or review.root_cause_at or review.reminded_at:
            return
        if (
            review.published_via == "canvas"
            and review.canvas_id
            and self._canvas_has_root_cause(review.canvas_id)
        ):
            deps.repo.mark_root_cause_written(rollback_id, "canvas", deps.clock())
            return
        text, blocks = link_message(deps, rollback, review, is_reminder=True)
        channel = review.channel_id or rollback.channel_id
        marker = post_marker("review_reminder", rollback_id)
        is_posted = item.tries > 1 and channel and find_marked(deps.slack, channel, marker)
        if channel and not is_posted:  # a reminder whose answer was lost is not sent twice
            deps.slack.chat_postMessage(channel=channel, text=text, blocks=blocks, metadata=marker)
        deps.repo.update_review(rollback_id, deps.clock(), reminded_at=deps.clock())

    def _canvas_has_root_cause(self, canvas_id: str) -> bool:
        """Read the canvas back; when Slack will not say (scope, method), assume not written."""
        try:
            content = self.deps.slack.canvases_getContent(
                canvas_id=canvas_id, content_type="markdown"
            )
        except SlackError as exc:
            log.info("cannot read canvas %s back (%s)", canvas_id, exc.error)
            return False
        return root_cause_is_written(str(content.get("content") or ""))


def link_message(
    deps: Deps, rollback: Rollback, review: Review, *, is_reminder: bool = False
) -> tuple[str, list[dict[str, Any]]]:
    """The link to a review (and its button), as posted, re-posted and in reminders."""
    rid = review.rollback_id
    links = []
    if review.permalink:
        links.append(f"<{review.permalink}|{review.published_via or 'document'} in Slack>")
    if (web := review_url(deps, rid)) is not None:
        links.append(f"<{web}|web page>")
    where = " · ".join(links) or f"`{review_path(deps, rid)}` on the bot's web address"
    if is_reminder:
        text = (
            f":bell: The review of rollback #{rid} of *{rollback.service}* has no root cause yet:"
            f" {where}. Please write it, then press *Root cause written*."
        )
    else:
        text = (
            f":memo: Post-rollback review of rollback #{rid} of *{rollback.service}*"
            f" ({rollback.status}): {where}. It is pre-filled from what the bot recorded; please"
            " write the root cause, contributing factors, lessons and action items."
        )
    if review.root_cause_at:
        by = review.root_cause_by
        text += " Root cause written" + (f" (<@{by}>)." if by and by != "canvas" else ".")
        return text, [section(text)]
    written = button("Root cause written", ROOT_CAUSE_WRITTEN_ACTION, str(rid))
    return text, [section(text), {"type": "actions", "elements": [written]}]


# --- GET /reviews/{token} ------------------------------------------------------------------

_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.25rem .5rem}}</style>
</head><body>
{body}
</body></html>
"""


def review_page(deps: Deps, environ: WSGIEnvironment, start: StartResponse) -> Iterable[bytes]:
    """The stored Markdown as HTML (raw HTML in it is escaped). A wrong or missing token is a
    bare 404; with the right one, a review not there yet is a 404 that says why."""
    rollback_id = _rollback_id_of(deps, str(environ.get("PATH_INFO", "")))
    if rollback_id is None:
        return _html(start, "404 Not Found", "Not found", "<p>No such review.</p>")
    review = deps.repo.get_review(rollback_id)
    if review is None:
        rollback = deps.repo.get_rollback(rollback_id)
        if rollback is None:
            reason = f"There is no rollback #{rollback_id}."
        elif rollback.status not in TERMINAL:
            reason = (
                f"Rollback #{rollback_id} is {rollback.status}: its review is written when it ends."
            )
        elif rollback.started_at is None:
            reason = (
                f"Rollback #{rollback_id} was {rollback.status} before it ran: it has no review."
            )
        else:
            reason = f"Rollback #{rollback_id} is {rollback.status}: its review is being published."
        return _html(start, "404 Not Found", "Review not found", f"<p>{html.escape(reason)}</p>")
    title = f"Post-rollback review: rollback #{rollback_id}"
    return _html(start, "200 OK", title, _MARKDOWN.render(review.markdown))


def _html(start: StartResponse, status: str, title: str, body: str) -> Iterable[bytes]:
    page = _PAGE.format(title=html.escape(title), body=body).encode()
    start(
        status,
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(page))),
            # a page of people's words: no script, no frame, no sniffing, whatever it holds
            ("Content-Security-Policy", _CSP),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("Cache-Control", "private, no-store"),
        ],
    )
    return [page]


_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; frame-ancestors 'none'"


def install(deps: Deps) -> None:
    publisher = ReviewPublisher(deps)
    deps.engine.listeners.append(ReviewListener(deps))
    deps.due.register(DueKind.REVIEW_PUBLISH, publisher.publish)
    deps.due.register(DueKind.REVIEW_REMIND, publisher.remind)
    deps.routes.append(Route("GET", "/reviews/", lambda env, start: review_page(deps, env, start)))
