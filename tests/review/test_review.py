"""The review document from recorded rollbacks, and its publication against the Slack simulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.catalog.load import Catalog, parse_catalog
from bot.review.document import ROOT_CAUSE_PROMPT, build_review, root_cause_is_written
from bot.review.facts import gather, with_names
from bot.review.publish import _MARKDOWN, ReviewListener, review_path
from bot.rollback.lifecycle import DueKind, review_publish_key, review_remind_key
from bot.sim.slack_api import SlackCall, SlackSimulator
from storage.db import make_engine, migrate
from storage.repo.records import NewStep
from storage.repository import Repository
from tests.conftest import Harness

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
CATALOG = """\
defaults:
  channel: C0DEPLOYS
  sla_minutes: 15
services:
  checkout:
    namespace: shop
    deployment: checkout-api
    approvers: [U0APPROVER1, U0APPROVER2]
    responders: [U0ONCALL1]
"""


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    engine = make_engine(f"sqlite:///{tmp_path / 'review.db'}")
    migrate(engine)
    return Repository(engine)


@pytest.fixture
def catalog() -> Catalog:
    return parse_catalog(CATALOG, "test.yaml")


def assess(repo: Repository) -> int:
    assessment_id = repo.create_assessment("checkout", "U0ONCALL1", "C0DEPLOYS", at(0))
    fired = {"level": "critical", "points": 25, "condition": "> 10 %", "fired": True}
    repo.complete_assessment(
        assessment_id,
        decision="IMMEDIATE ROLLBACK",
        critical=55,
        high=0,
        medium=0,
        total=55,
        inputs={
            "error_rate": {"value": 0.25, "note": None, "query": "q1"},
            "db_up": {"value": 0, "note": None, "query": "q2"},
            "latency_p95_seconds": {"value": None, "note": "no data", "query": "q3"},
        },
        result={
            "reasons": ["error rate 25 % > 10 %", "database unreachable"],
            "triggers": {
                "error_rate": [fired, {**fired, "level": "high", "points": 20, "fired": False}],
                "db_up": [{"level": "critical", "points": 30, "condition": "down", "fired": True}],
            },
        },
        now=at(0.5),
    )
    return assessment_id


UNDO = {
    "from_revision": 3,
    "to_revision": 2,
    "images_before": {"app": "shop/checkout:v3"},
    "images_after": {"app": "shop/checkout:v2"},
}


def record_planned_rollback(repo: Repository) -> int:
    """A planned rollback that was approved, paged, ran three steps and succeeded in 6 min."""
    rollback = repo.create_rollback(
        service="checkout",
        kind="planned",
        strategy="undo",
        requested_by="U0ONCALL1",
        status="pending_approval",
        now=at(1),
        reason="5xx storm | after v3",
        assessment_id=assess(repo),
        channel_id="C0DEPLOYS",
        steps=[
            NewStep("preparation", "Snapshot", "snapshot", {"params": {}}),
            NewStep("application", "Roll back the deployment", "rollout_undo", {"params": {}}),
            NewStep("verification", "Wait for the rollout", "wait_rollout", {"params": {}}),
        ],
    )
    rid = rollback.id
    assert rid is not None
    repo.record_approval(rid, "U0APPROVER1", "approve", via="button", now=at(3))
    repo.add_audit_event("rollback.approved", now=at(3), rollback_id=rid, actor="U0APPROVER1")
    repo.set_rollback_status(rid, "approved", at(3))
    repo.set_rollback_status(rid, "running", at(4))
    details: list[dict[str, Any]] = [
        {"snapshots": {"Deployment/checkout-api": "kind: Deployment\n"}},
        {"undo": UNDO, "is_noop": False},
        {"status": "rolled out"},
    ]
    for step, detail, (start, end) in zip(
        repo.list_steps(rid), details, [(4, 4.5), (4.5, 5), (5, 10)], strict=True
    ):
        assert step.id is not None
        repo.start_step(step.id, at(start))
        repo.finish_step(step.id, "succeeded", at(end), detail=detail)
    page = repo.add_page(
        rollback_id=rid,
        reason="critical",
        level=1,
        position=0,
        contact_name="Primary on-call",
        phone="+15550100001",
        now=at(4),
    )
    assert page.id is not None
    repo.mark_page_sent(page.id, "SM0001", at(4.1))
    repo.acknowledge_ladder(page.id, "Primary on-call", at(6))
    repo.set_rollback_status(rid, "succeeded", at(10))
    repo.add_audit_event("rollback.succeeded", now=at(10), service="checkout", rollback_id=rid)
    return rid


def section(markdown: str, heading: str) -> str:
    _, found, rest = markdown.partition(f"\n## {heading}\n")
    assert found, f"no section {heading!r}"
    return rest.split("\n## ", 1)[0]


def test_every_section_of_a_succeeded_planned_rollback(repo: Repository, catalog: Catalog) -> None:
    rid = record_planned_rollback(repo)
    facts = gather(repo, catalog, rid)
    assert facts is not None
    doc = build_review(facts)

    assert doc.startswith("# Post-Rollback Review: checkout rollback #1\n")
    assert "[TBD]" not in doc
    summary = section(doc, "Executive Summary")
    assert "- **Service**: checkout (namespace shop, deployment checkout-api)" in summary
    assert "- **Rollback ID**: #1 (planned, strategy undo)" in summary
    assert "- **Outcome**: Succeeded" in summary
    assert "- **Rollback Started**: 2026-03-01 10:04:00 UTC" in summary
    assert "- **Duration**: 6 min 0 s (SLA: 15 minutes) — within SLA, 9 min 0 s to spare" in summary
    assert "- **Requested by**: @U0ONCALL1" in summary
    assert "@U0APPROVER1 (approved 2026-03-01 10:03:00 UTC via button)" in summary

    timeline = section(doc, "Timeline")
    rows = [line for line in timeline.splitlines() if line.startswith("| 2026")]
    assert rows[0].startswith("| 2026-03-01 10:00:30 UTC | 0 s | Issue detection: assessment #1")
    assert "| 2026-03-01 10:03:00 UTC | 2 min 30 s | @U0APPROVER1 voted approve |" in timeline
    assert "application: Roll back the deployment succeeded after 30 s" in timeline
    assert "Page critical level 1 to Primary on-call" in timeline
    assert "Page acknowledged by Primary on-call" in timeline
    assert rows[-1].endswith("Rollback completed: succeeded |")
    assert [r.split(" | ")[0] for r in rows] == sorted(r.split(" | ")[0] for r in rows)

    trigger = section(doc, "Trigger Analysis")
    assert "- **Reason**: 5xx storm \\| after v3" in trigger  # Markdown-escaped user text
    assert "#1 at 2026-03-01 10:00:30 UTC (linked to this rollback)" in trigger
    assert "IMMEDIATE ROLLBACK — critical 55, high 0, medium 0, total 55" in trigger
    assert (
        "| error_rate | 25.00 % | critical: > 10 % (+25), high: > 10 % (+20) | +25 critical |"
        in (trigger)
    )
    assert "| db_up | unreachable | critical: down (+30) | +30 critical |" in trigger
    assert "| latency_p95_seconds | unknown (could not be read) |" in trigger

    execution = section(doc, "Rollback Execution")
    assert "- **Target revision**: 2 (from 3)" in execution
    assert "| 3 | verification | Wait for the rollout | succeeded |" in execution
    assert "| 5 min 0 s |" in execution
    assert (
        "- Deployment checkout-api: revision 3 → template of revision 2"
        " (app: shop/checkout:v3 → shop/checkout:v2)"
    ) in execution
    assert "- Deployment/checkout-api: snapshot of the state before the rollback" in execution

    impact = section(doc, "Impact Assessment")
    assert "error_rate 25.00 %, db_up unreachable" in impact
    assert "- **Exposure window**: 9 min 30 s from detection" in impact
    assert "- **Pages**: 1 sent, 1 acknowledged" in impact

    assert section(doc, "Root Cause").strip() == ROOT_CAUSE_PROMPT
    assert "To be written" in section(doc, "Contributing Factors")
    assert "The rollback took 6 min 0 s" in section(doc, "Lessons Learned")
    actions = section(doc, "Action Items")
    assert "| Write the root cause and mark it written in Slack | @U0ONCALL1 | open |" in actions
    assert not root_cause_is_written(doc)
    assert root_cause_is_written(doc.replace(ROOT_CAUSE_PROMPT, "Pool size 5 in v3."))


def _immediate(
    repo: Repository, status: str, error: str | None = None, reason: str | None = None
) -> int:
    rollback = repo.create_rollback(
        service="checkout",
        kind="immediate",
        strategy="undo",
        requested_by="U0ONCALL1",
        status="running",
        now=at(1),
        reason=reason or "",
        channel_id="C0DEPLOYS",
        steps=[
            NewStep("application", "Roll back the deployment", "rollout_undo", {"params": {}}),
            NewStep("verification", "Wait for the rollout", "wait_rollout", {"params": {}}),
        ],
    )
    assert rollback.id is not None
    first, second = repo.list_steps(rollback.id)
    assert first.id is not None and second.id is not None
    repo.start_step(first.id, at(1))
    repo.finish_step(first.id, "succeeded", at(1.5), detail={"undo": UNDO})
    repo.start_step(second.id, at(1.5))
    if status == "failed":
        repo.finish_step(second.id, "failed", at(20), error=error)
    else:
        repo.add_audit_event(
            "rollback.abort_requested",
            now=at(2),
            rollback_id=rollback.id,
            actor="U0APPROVER1",
            detail={"reason": "wrong service"},
        )
        repo.finish_step(second.id, "failed", at(2), error="aborted while running")
    repo.set_rollback_status(rollback.id, status, at(20 if status == "failed" else 2), error=error)
    return rollback.id


def test_a_rollback_that_failed_early_is_not_within_its_sla_and_names_steps_never_run(
    repo: Repository, catalog: Catalog
) -> None:
    rollback = repo.create_rollback(
        service="checkout",
        kind="immediate",
        strategy="undo",
        requested_by="U0ONCALL1",
        status="running",
        now=at(1),
        reason="5xx",
        channel_id="C0DEPLOYS",
        steps=[
            NewStep("application", "Roll back the deployment", "rollout_undo", {"params": {}}),
            NewStep("application", "Wait for the rollout", "wait_rollout", {"params": {}}),
            NewStep("verification", "Health check", "http_check", {"params": {}}),
        ],
    )
    rid = rollback.id
    assert rid is not None
    first = repo.list_steps(rid)[0]
    assert first.id is not None
    repo.start_step(first.id, at(1))
    repo.add_audit_event("step.failed", now=at(1.5), rollback_id=rid, detail={"step": "x"})
    repo.finish_step(first.id, "failed", at(1.5), error="422")
    repo.set_rollback_status(rid, "failed", at(1.5), error="Roll back the deployment: 422")
    facts = gather(repo, catalog, rid)
    assert facts is not None

    markdown = build_review(facts)

    assert "within SLA" not in markdown and "to spare" not in markdown
    assert "ended failed without restoring the service, so the SLA was not met" in markdown
    assert "every step ran once" not in markdown
    assert (
        "- **Attempts**: 1 step ran once; never run: Wait for the rollout, Health check" in markdown
    )
    timeline = section(markdown, "Timeline")
    assert timeline.count("Roll back the deployment") == 2  # started, failed: once each
    assert "step: failed" not in timeline


def test_the_timeline_tells_each_vote_once_with_names(repo: Repository, catalog: Catalog) -> None:
    rid = record_planned_rollback(repo)
    repo.add_audit_event(
        "approval.granted",
        now=at(3),
        rollback_id=rid,
        actor="U0APPROVER1",
        detail={"approvers": ["U0APPROVER1"]},
    )
    facts = gather(repo, catalog, rid)
    assert facts is not None
    names = {"U0APPROVER1": "Ana Approver", "U0ONCALL1": "Oscar Oncall"}

    markdown = build_review(with_names(facts, names.get))

    timeline = section(markdown, "Timeline")
    assert "voted approve" not in timeline  # the approval.* events tell it already
    assert "['U0APPROVER1']" not in markdown
    assert "(approvers: @Ana Approver)" in timeline
    assert "- **Requested by**: @Oscar Oncall" in markdown
    assert "U0ONCALL1" not in markdown


def test_a_failed_rollback_says_where_and_breaches_the_sla(
    repo: Repository, catalog: Catalog
) -> None:
    rid = _immediate(repo, "failed", "Wait for the rollout: exceeded its progress deadline")
    facts = gather(repo, catalog, rid)
    assert facts is not None
    doc = build_review(facts)

    assert "- **Outcome**: Failed: Wait for the rollout: exceeded its progress deadline" in doc
    assert "19 min 0 s (SLA: 15 minutes) — **SLA breached** by 4 min 0 s" in doc
    assert "- **Approvers**: none needed: immediate rollback by a responder" in doc
    assert "- **Assessment**: none of checkout was recorded in the 2 h 0 min before" in doc
    assert "The rollback failed at verification: Wait for the rollout" in doc
    assert "| Restore the service: retry, roll forward or fix | @U0ONCALL1 | open |" in doc


def test_an_aborted_rollback_names_who_aborted(repo: Repository, catalog: Catalog) -> None:
    assess(repo)  # 30 s before the request: taken as the trigger
    rid = _immediate(repo, "aborted")
    facts = gather(repo, catalog, rid)
    assert facts is not None
    doc = build_review(facts)

    assert "- **Outcome**: Aborted before completion" in doc
    assert "Abort requested by @U0APPROVER1 (reason: wrong service)" in section(doc, "Timeline")
    execution = section(doc, "Rollback Execution")
    assert "- **Manual intervention**: Abort requested by @U0APPROVER1" in execution
    assert "| aborted while running |" in execution
    assert "(latest before the request)" in doc
    assert "| Confirm the service's state after the abort | @U0ONCALL1 | open |" in doc


# --- publishing against the Slack simulator ----------------------------------------------------


@pytest.fixture
def harness(make_harness: Any) -> Harness:
    h: Harness = make_harness(CATALOG, prometheus_url=None, public_url="https://bot.example.com")
    return h


def finished_rollback(h: Harness, reason: str | None = None) -> int:
    """A rollback recorded in the bot's database, with its progress message posted."""
    repo = h.bot.deps.repo
    rid = _immediate(repo, "failed", "boom", reason)
    ts = h.bot.deps.slack.chat_postMessage(channel="C0DEPLOYS", text=f"Rollback #{rid}")["ts"]
    repo.set_rollback_progress_ts(rid, ts)
    return rid


def publish(h: Harness, rid: int) -> None:
    rollback = h.bot.deps.repo.get_rollback(rid)
    assert rollback is not None
    ReviewListener(h.bot.deps).rollback_finished(rollback)
    assert h.bot.deps.due.tick() == 1


def thread_replies(slack: SlackSimulator) -> list[dict[str, Any]]:
    return [m for m in slack.messages("C0DEPLOYS") if m.get("thread_ts") not in (None, m["ts"])]


def test_published_as_a_canvas_shared_with_the_channel(harness: Harness) -> None:
    rid = finished_rollback(harness)
    publish(harness, rid)

    review = harness.bot.deps.repo.get_review(rid)
    assert review is not None and review.published_via == "canvas"
    assert review.canvas_id is not None
    canvas = harness.slack.canvas(review.canvas_id)
    assert canvas is not None
    assert canvas["markdown"] == review.markdown
    assert canvas["access"] == {"C0DEPLOYS": "write"}
    assert review.permalink == f"https://example.slack.com/docs/T0TEST/{review.canvas_id}"
    (reply,) = thread_replies(harness.slack)
    assert f"<{review.permalink}|canvas in Slack>" in reply["text"]
    web = f"https://bot.example.com{review_path(harness.bot.deps, rid)}"
    assert f"<{web}|web page>" in reply["text"]
    assert harness.slack.files("C0DEPLOYS") == []
    remind = harness.bot.deps.repo.get_work(review_remind_key(rid))
    assert remind is not None and remind.due_at == at(20) + timedelta(hours=24)

    # running the publication again (a retry after a crash) publishes nothing twice
    harness.bot.deps.due.schedule(
        DueKind.REVIEW_PUBLISH, "again", harness.bot.deps.clock(), {"rollback_id": rid}
    )
    harness.bot.deps.due.tick()
    assert len(harness.slack.calls_to("canvases.create")) == 1
    assert len(thread_replies(harness.slack)) == 1


@pytest.mark.parametrize("how", ["free plan", "injected error"])
def test_free_workspace_gets_a_markdown_file_in_the_thread(harness: Harness, how: str) -> None:
    if how == "free plan":
        harness.slack.is_paid_plan = False
    else:
        harness.slack.inject_error(
            "canvases.create", "free_teams_cannot_create_non_tabbed_canvases"
        )
    rid = finished_rollback(harness)
    publish(harness, rid)

    review = harness.bot.deps.repo.get_review(rid)
    assert review is not None and review.published_via == "file"
    (shared,) = harness.slack.files("C0DEPLOYS")
    assert shared["content"] == review.markdown.encode()
    assert shared["name"] == f"rollback-{rid}-checkout-review.md"
    progress_ts = harness.bot.deps.repo.get_rollback(rid).progress_ts  # type: ignore[union-attr]
    assert shared["thread_ts"] == progress_ts
    assert review.permalink and review.permalink.endswith(shared["name"])
    link = next(m for m in thread_replies(harness.slack) if "Post-rollback review" in m["text"])
    assert f"<{review.permalink}|file in Slack>" in link["text"]


def test_slack_failing_is_retried_without_losing_the_review(harness: Harness) -> None:
    harness.slack.inject_error("canvases.create", "fatal_error")
    rid = finished_rollback(harness)
    publish(harness, rid)

    work = harness.bot.deps.repo.get_work(review_publish_key(rid))
    assert (
        work is not None and work.status == "pending" and "fatal_error" in (work.last_error or "")
    )
    review = harness.bot.deps.repo.get_review(rid)
    assert review is not None and review.published_via is None  # stored before acted on


def test_review_page_renders_escaped_html_and_404s(harness: Harness) -> None:
    rid = finished_rollback(harness)
    harness.bot.deps.repo.add_audit_event(
        "rollback.note", now=at(3), rollback_id=rid, detail={"text": "<script>x()</script>"}
    )
    publish(harness, rid)

    page = httpx.get(f"{harness.server.url}{review_path(harness.bot.deps, rid)}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<h1>Post-Rollback Review: checkout rollback #1</h1>" in page.text
    assert "<table>" in page.text and "<h2>Root Cause</h2>" in page.text
    assert "<script>" not in page.text and "&lt;script&gt;" in page.text
    missing = httpx.get(f"{harness.server.url}{review_path(harness.bot.deps, 99)}")
    assert missing.status_code == 404 and "There is no rollback #99." in missing.text
    assert httpx.get(f"{harness.server.url}/reviews/abc").status_code == 404


def test_a_review_is_served_only_under_its_token(harness: Harness) -> None:
    """The page needs no login: its address is the secret. Sequential ids alone get nothing,
    and the 404 does not even say whether that rollback exists."""
    rid = finished_rollback(harness)
    publish(harness, rid)
    path = review_path(harness.bot.deps, rid)
    token = path.removeprefix("/reviews/")
    mac = token.partition("-")[2]
    assert token.startswith(f"{rid}-") and len(mac) >= 22  # 128 bits
    assert httpx.get(f"{harness.server.url}{path}").status_code == 200

    other = review_path(harness.bot.deps, rid + 1).partition("-")[2]
    for guess in (
        f"/reviews/{rid}",
        f"/reviews/{rid}/",
        f"/reviews/{rid}-",
        f"/reviews/{rid}-{other}",  # another review's mac
        f"/reviews/{token[:-1]}",
        f"/reviews/{token}x",
        f"/reviews/{token}/",
        f"/reviews/{rid}/{mac}",
        f"/reviews/{rid + 1}-{mac}",
        f"/reviews/0{rid}-{mac}",
        f"/reviews/{mac}",
    ):
        page = httpx.get(f"{harness.server.url}{guess}")
        assert page.status_code == 404, guess
        assert "No such review." in page.text and "rollback" not in page.text.lower(), guess


def test_review_links_change_with_the_signing_secret(make_harness: Any) -> None:
    """The token is keyed: another deployment (another signing secret) cannot forge one."""
    first: Harness = make_harness(CATALOG, prometheus_url=None)
    second: Harness = make_harness(CATALOG, prometheus_url=None)
    assert review_path(first.bot.deps, 1) != review_path(second.bot.deps, 1)
    assert review_path(first.bot.deps, 1) == review_path(first.bot.deps, 1)


HOSTILE = (
    "see [the fix](https://evil.example) <b>now</b> **x** | y\n"
    "## Root Cause\nnothing to see, `rm -rf`"
)


def test_a_hostile_reason_stays_plain_text_in_the_review(
    repo: Repository, catalog: Catalog
) -> None:
    rid = _immediate(repo, "failed", "boom\n## Root Cause\n[x](https://evil.example)", HOSTILE)
    facts = gather(repo, catalog, rid)
    assert facts is not None
    doc = build_review(facts)

    escaped = (
        r"see \[the fix\](https://evil.example) \<b\>now\</b\> \*\*x\*\* \| y"
        r" \#\# Root Cause nothing to see, \`rm -rf\`"
    )
    assert f"- **Reason given**: {escaped}" in section(doc, "Executive Summary")
    assert f"- **Reason**: {escaped}" in section(doc, "Trigger Analysis")
    assert doc.count("\n## Root Cause\n") == 1  # newlines collapsed: no second heading
    assert not root_cause_is_written(doc)
    html_doc = _MARKDOWN.render(doc)
    assert "https://evil.example" in html_doc and 'href="https://evil' not in html_doc
    assert "<b>" not in html_doc and html_doc.count("<h2>Root Cause</h2>") == 1
    assert "[the fix](https://evil.example) &lt;b&gt;now&lt;/b&gt; **x** | y" in html_doc


def test_a_hostile_reason_is_no_link_on_the_reviews_page(harness: Harness) -> None:
    rid = finished_rollback(harness, HOSTILE)
    publish(harness, rid)

    page = httpx.get(f"{harness.server.url}{review_path(harness.bot.deps, rid)}").text
    assert 'href="https://evil' not in page and "<b>" not in page
    assert page.count("<h2>Root Cause</h2>") == 1
    review = harness.bot.deps.repo.get_review(rid)
    assert review is not None and review.canvas_id is not None
    canvas = harness.slack.canvas(review.canvas_id)
    assert canvas is not None and not root_cause_is_written(canvas["markdown"])


def test_files_info_refused_uploads_once_and_still_links(harness: Harness) -> None:
    """Without ``files:read`` (an older install), files.info answers missing_scope."""
    harness.slack.is_paid_plan = False
    harness.slack.inject_error("files.info", "missing_scope", times=5)
    rid = finished_rollback(harness)
    publish(harness, rid)

    review = harness.bot.deps.repo.get_review(rid)
    assert review is not None and review.published_via == "file" and review.file_id
    assert len(harness.slack.calls_to("files.getUploadURLExternal")) == 1
    assert len(harness.slack.files("C0DEPLOYS")) == 1
    (link,) = [m for m in thread_replies(harness.slack) if "Post-rollback review" in m["text"]]
    web = f"https://bot.example.com{review_path(harness.bot.deps, rid)}"
    assert f"<{web}|web page>" in link["text"]
    work = harness.bot.deps.repo.get_work(review_publish_key(rid))
    assert work is not None and work.status == "done"


class ShiftedClock:
    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def test_a_failure_after_the_upload_does_not_upload_again(make_harness: Any) -> None:
    clock = ShiftedClock()
    h: Harness = make_harness(
        CATALOG, prometheus_url=None, public_url="https://bot.example.com", clock=clock
    )
    h.slack.is_paid_plan = False
    rid = finished_rollback(h)
    h.slack.inject_error("chat.postMessage", "fatal_error")  # the link, after the upload
    publish(h, rid)
    review = h.bot.deps.repo.get_review(rid)
    assert review is not None and review.file_id and review.published_via == "file"

    clock.offset = timedelta(minutes=1)
    assert h.bot.deps.due.tick() == 1
    assert len(h.slack.calls_to("files.getUploadURLExternal")) == 1
    assert len(h.slack.files("C0DEPLOYS")) == 1
    links = [m for m in thread_replies(h.slack) if "Post-rollback review" in m["text"]]
    assert len(links) == 1


def test_canvas_access_refused_falls_back_to_the_file(harness: Harness) -> None:
    harness.slack.inject_error("canvases.access.set", "restricted_action")
    rid = finished_rollback(harness)
    publish(harness, rid)

    review = harness.bot.deps.repo.get_review(rid)
    assert review is not None and review.published_via == "file"
    assert len(harness.slack.calls_to("canvases.create")) == 1
    (shared,) = harness.slack.files("C0DEPLOYS")
    link = next(m for m in thread_replies(harness.slack) if "Post-rollback review" in m["text"])
    assert f"<{review.permalink}|file in Slack>" in link["text"]
    assert review.permalink and review.permalink.endswith(shared["name"])


def test_a_failing_incident_channel_post_does_not_repeat_the_thread_link(
    make_harness: Any,
) -> None:
    clock = ShiftedClock()
    h: Harness = make_harness(
        CATALOG, prometheus_url=None, public_url="https://bot.example.com", clock=clock
    )
    h.slack.add_channel("C0INCIDENT", "rb-checkout-20260301-1")
    rid = finished_rollback(h)
    assert h.bot.deps.repo.set_incident_channel(rid, "C0INCIDENT")

    def fail_the_next_post(call: SlackCall) -> None:
        is_link = call.method == "chat.postMessage" and "Post-rollback" in str(call.params)
        if is_link and call.params.get("channel") == "C0DEPLOYS":
            h.slack.inject_error("chat.postMessage", "fatal_error")

    h.slack.subscribe(fail_the_next_post)
    publish(h, rid)
    assert h.bot.deps.repo.get_work(review_publish_key(rid)).status == "pending"  # type: ignore[union-attr]
    assert not [m for m in h.slack.messages("C0INCIDENT") if "Post-rollback" in m["text"]]

    clock.offset = timedelta(minutes=1)
    assert h.bot.deps.due.tick() == 1
    assert len([m for m in thread_replies(h.slack) if "Post-rollback" in m["text"]]) == 1
    incident = [m for m in h.slack.messages("C0INCIDENT") if "Post-rollback" in m["text"]]
    assert len(incident) == 1 and "thread_ts" not in incident[0]
    review = h.bot.deps.repo.get_review(rid)
    assert review is not None and review.announced_at is not None
    events = h.bot.deps.repo.list_audit_events(kind="review.announced", rollback_id=rid)
    assert sorted(e.channel_id or "" for e in events) == ["C0DEPLOYS", "C0INCIDENT"]
