"""A rollback through signed HTTP leaves a review: published, linked, served and reminded."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from slack_sdk import WebClient

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.slack.web import SlackError
from bot.review.publish import ROOT_CAUSE_WRITTEN_ACTION, ReviewPublisher, review_path
from bot.rollback.lifecycle import review_remind_key
from bot.sim.kube_api import KubeSimulator
from tests.conftest import BOT_TOKEN, Harness, catalog_yaml

NS = "shop"


class BotClock:
    """Wall time plus an offset a test moves forward (due work, reminders)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def kube_sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as sim:
        sim.seed_deployment(NS, "checkout-api", images=["shop/checkout:v1", "shop/checkout:v2"])
        yield sim


@pytest.fixture
def clock() -> BotClock:
    return BotClock()


@pytest.fixture
def harness(make_harness: Any, kube_sim: KubeSimulator, clock: BotClock) -> Harness:
    kube = KubernetesClient(api_client_for=lambda ctx: kube_sim.api_client(), sleep=lambda s: None)
    text = catalog_yaml(
        "  checkout:\n    namespace: shop\n    deployment: checkout-api\n"
        "    responders: [U0ONCALL1]\n    approvers: [U0APPROVER1]"
    )
    h: Harness = make_harness(
        text, prometheus_url=None, kube=kube, clock=clock, public_url="https://bot.example.com"
    )
    return h


def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def review_links(h: Harness) -> list[dict[str, Any]]:
    return [m for m in h.slack.messages("C0DEPLOYS") if "Post-rollback review" in m["text"]]


def run_and_publish(h: Harness, text: str) -> None:
    """Run a rollback until its review is published and nothing runs in the background: a
    background tick still holding claims would be re-claimed when the test moves the clock."""
    h.slash(text)
    h.wait_rollbacks()

    def is_published() -> bool:
        h.bot.deps.due.tick()  # the publication may have asked to run again (RetryLater)
        work = h.bot.deps.repo.get_work("review.publish:1")
        return work is not None and work.status == "done"

    until(is_published, "the review to be published")
    assert h.bot.deps.work.wait_idle(10), "background work still running after 10 s"
    assert review_links(h)


def test_immediate_rollback_review_published_served_reposted(harness: Harness) -> None:
    run_and_publish(harness, "run checkout --immediate 5xx storm after v2")

    review = harness.bot.deps.repo.get_review(1)
    rollback = harness.bot.deps.repo.get_rollback(1)
    assert review is not None and rollback is not None and review.published_via == "canvas"
    (link,) = review_links(harness)
    assert link["thread_ts"] == rollback.progress_ts
    path = review_path(harness.bot.deps, 1)
    assert f"<https://bot.example.com{path}|web page>" in link["text"]
    canvas = harness.slack.canvas(review.canvas_id or "")
    assert canvas is not None and "- **Outcome**: Succeeded" in canvas["markdown"]
    assert "revision 2 → template of revision 1" in canvas["markdown"]
    assert "- **Reason given**: 5xx storm after v2" in canvas["markdown"]

    page = httpx.get(f"{harness.server.url}{path}")
    assert page.status_code == 200
    assert "<h2>Rollback Execution</h2>" in page.text
    assert "Roll checkout-api back" in page.text

    again = harness.slash("review 1").json()
    assert again["response_type"] == "ephemeral"
    assert f"<{review.permalink}|canvas in Slack>" in again["text"]
    assert "There is no rollback #9." in harness.slash("review 9").json()["text"]


def test_review_of_a_running_rollback_is_explained(
    harness: Harness, kube_sim: KubeSimulator
) -> None:
    kube_sim.set_never_ready(NS, "checkout-api")
    harness.slash("run checkout --immediate bad release")
    answer = harness.slash("review 1").json()["text"]
    assert "is running: its review is written when it ends" in answer
    page = httpx.get(f"{harness.server.url}{review_path(harness.bot.deps, 1)}")
    assert page.status_code == 404 and "is running" in page.text
    harness.slash("abort 1")
    harness.wait_rollbacks()


def test_failed_rollback_reminds_until_the_root_cause_is_marked(
    harness: Harness, clock: BotClock, kube_sim: KubeSimulator
) -> None:
    kube_sim.inject("PATCH", "/deployments/checkout-api$", 422)  # the undo fails
    run_and_publish(harness, "run checkout --immediate bad release")
    assert "- **Outcome**: Failed: " in (harness.bot.deps.repo.get_review(1).markdown)  # type: ignore[union-attr]

    clock.offset = timedelta(hours=23)
    assert harness.bot.deps.due.tick() == 0  # not due yet
    clock.offset = timedelta(hours=24, minutes=1)
    assert harness.bot.deps.due.tick() == 1
    reminders = [m for m in harness.slack.messages("C0DEPLOYS") if ":bell:" in m["text"]]
    assert len(reminders) == 1 and "has no root cause yet" in reminders[0]["text"]
    assert "thread_ts" not in reminders[0]  # in the channel, not buried in the thread
    assert harness.slack.calls_to("canvases.getContent")  # it tried to read the canvas back

    (button,) = reminders[0]["blocks"][1]["elements"]
    assert button["action_id"] == ROOT_CAUSE_WRITTEN_ACTION
    harness.requester.click(reminders[0], button, user_id="U0APPROVER1", channel_id="C0DEPLOYS")
    harness.slack.wait_for("response_url")
    review = harness.bot.deps.repo.get_review(1)
    assert review is not None and review.root_cause_by == "U0APPROVER1"
    (event,) = harness.bot.deps.repo.list_audit_events(kind="review.root_cause_written")
    assert event.actor == "U0APPROVER1"


def test_root_cause_marked_before_the_reminder_cancels_it(
    harness: Harness, clock: BotClock
) -> None:
    run_and_publish(harness, "run checkout --immediate bad release")
    (link,) = review_links(harness)
    button = link["blocks"][1]["elements"][0]
    harness.requester.click(link, button, user_id="U0ONCALL1", channel_id="C0DEPLOYS")
    until(
        lambda: (
            (w := harness.bot.deps.repo.get_work(review_remind_key(1))) is not None
            and w.status == "cancelled"
        ),
        "the reminder to be cancelled",
    )

    clock.offset = timedelta(hours=25)
    assert harness.bot.deps.due.tick() == 0
    assert not [m for m in harness.slack.messages("C0DEPLOYS") if ":bell:" in m["text"]]


def test_canvas_read_back_with_a_root_cause_stops_the_reminder(
    harness: Harness, clock: BotClock
) -> None:
    run_and_publish(harness, "run checkout --immediate bad release")
    review = harness.bot.deps.repo.get_review(1)
    assert review is not None
    written = review.markdown.split("## Root Cause\n", 1)
    filled = (
        written[0]
        + "## Root Cause\nConnection pool of 5 in v2.\n\n## Contributing"
        + (written[1].split("## Contributing", 1)[1])
    )
    # someone writes the root cause in the canvas (through Slack's API, as a client would)
    assert review.canvas_id is not None
    person = WebClient(token=BOT_TOKEN, base_url=harness.slack.api_url)  # the sim has one token
    person.canvases_edit(
        canvas_id=review.canvas_id,
        changes=[
            {"operation": "replace", "document_content": {"type": "markdown", "markdown": filled}}
        ],
    )

    clock.offset = timedelta(hours=25)
    assert harness.bot.deps.due.tick() == 1
    assert not [m for m in harness.slack.messages("C0DEPLOYS") if ":bell:" in m["text"]]
    review = harness.bot.deps.repo.get_review(1)
    assert review is not None and review.root_cause_by == "canvas"


def test_the_review_names_people_as_slack_shows_them(harness: Harness) -> None:
    harness.slack.add_user("U0ONCALL1", "oscar", "Oscar Oncall")
    run_and_publish(harness, "run checkout --immediate 5xx storm")

    review = harness.bot.deps.repo.get_review(1)
    assert review is not None
    assert "- **Requested by**: @Oscar Oncall" in review.markdown
    page = httpx.get(f"{harness.server.url}{review_path(harness.bot.deps, 1)}")
    assert "Oscar Oncall" in page.text and "U0ONCALL1" not in page.text


def test_only_the_incidents_owners_may_mark_the_root_cause_written(
    harness: Harness, clock: BotClock
) -> None:
    run_and_publish(harness, "run checkout --immediate 5xx storm")
    clock.offset = timedelta(hours=24, minutes=1)
    assert harness.bot.deps.due.tick() == 1
    (reminder,) = [m for m in harness.slack.messages("C0DEPLOYS") if ":bell:" in m["text"]]
    (button,) = reminder["blocks"][1]["elements"]

    harness.requester.click(reminder, button, user_id="U0STRANGER", channel_id="C0DEPLOYS")
    refused = harness.slack.wait_for("response_url", lambda c: ":no_entry:" in c.params["text"])

    assert "may mark the root cause written" in refused.params["text"]
    review = harness.bot.deps.repo.get_review(1)
    assert review is not None and review.root_cause_by is None  # the reminder keeps going
    (event,) = harness.bot.deps.repo.list_audit_events(kind="review.root_cause_refused")
    assert event.actor == "U0STRANGER"


def test_a_review_link_whose_answer_was_lost_is_not_posted_twice(harness: Harness) -> None:
    """Slack took the link but its answer was lost (a 500): the retry finds the marked post."""
    run_and_publish(harness, "run checkout --immediate 5xx storm after v2")
    rollback = harness.bot.deps.repo.get_rollback(1)
    review = harness.bot.deps.repo.get_review(1)
    assert rollback is not None and review is not None
    publisher = ReviewPublisher(harness.bot.deps)
    rollback = rollback.model_copy(update={"incident_channel_id": "C0INCIDENT"})
    harness.slack.inject("chat.postMessage", status=500, is_applied=True)
    with pytest.raises(SlackError):
        publisher._announce(rollback, review, is_retry=False)
    publisher._announce(rollback, review, is_retry=True)
    links = [m for m in harness.slack.messages("C0INCIDENT") if "Post-rollback review" in m["text"]]
    assert len(links) == 1
    announced = harness.bot.deps.repo.list_audit_events(kind="review.announced", rollback_id=1)
    assert [e.message_ts for e in announced if e.channel_id == "C0INCIDENT"] == [links[0]["ts"]]
