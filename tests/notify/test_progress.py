"""The progress message: one per rollback, edited in place, within Slack's Tier-3 budget."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.adapters.slack.web import slack_web_client
from bot.catalog.load import parse_catalog
from bot.execution.steps.table import plan_rows
from bot.notify.progress import SlackProgress
from bot.sim.slack_api import SlackSimulator
from storage.db import make_engine, migrate
from storage.repository import Repository
from tests.conftest import BOT_TOKEN, catalog_yaml, service_yaml

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


def test_many_changes_become_few_edits_and_the_final_state_always_lands(
    tmp_path: Path, slack: SlackSimulator
) -> None:
    from pydantic import SecretStr

    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    migrate(engine)
    repo = Repository(engine)
    names = [f"svc{i}" for i in range(5)]
    catalog = parse_catalog(catalog_yaml(*(service_yaml(n, None) for n in names)))
    client = slack_web_client(SecretStr(BOT_TOKEN), slack.api_url)
    progress = SlackProgress(client, repo, catalog, lambda: NOW, edits_per_minute=240, burst=3)
    ids = []
    for name in names:
        rollback = repo.create_rollback(
            service=name, kind="immediate", strategy="undo", requested_by="U1",
            reason="", target_revision=None, assessment_id=None, channel_id="C0DEPLOYS",
            status="running", now=NOW, steps=plan_rows(catalog.services[name].plan()),
        )  # fmt: skip
        assert rollback.id is not None
        ids.append(rollback.id)

    for _ in range(20):  # a burst of changes to every rollback
        for rollback_id in ids:
            progress.changed(rollback_id)
    for rollback_id in ids:
        repo.set_rollback_status(rollback_id, "succeeded", NOW)
        progress.changed(rollback_id, is_final=True)
    assert progress.flush(timeout=15)

    assert len(slack.calls_to("chat.postMessage")) == 5  # one message per rollback
    assert len(progress.edit_times) <= 3 + 5 + 1  # the burst, then finals first
    final = {m["ts"]: m["text"] for m in slack.messages("C0DEPLOYS")}
    assert all("SUCCEEDED" in text for text in final.values())


def one_rollback(
    tmp_path: Path,
    slack: SlackSimulator,
    status: str,
    edits_per_minute: float = 40.0,
    burst: int = 10,
) -> tuple[SlackProgress, Repository, int]:
    """A progress reporter over a fresh database holding one rollback of checkout."""
    from pydantic import SecretStr

    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    migrate(engine)
    repo = Repository(engine)
    catalog = parse_catalog(catalog_yaml(service_yaml("checkout", None)))
    client = slack_web_client(SecretStr(BOT_TOKEN), slack.api_url)
    progress = SlackProgress(
        client, repo, catalog, lambda: NOW, edits_per_minute=edits_per_minute, burst=burst
    )
    rollback = repo.create_rollback(
        service="checkout", kind="immediate", strategy="undo", requested_by="U1",
        reason="", target_revision=None, assessment_id=None, channel_id="C0DEPLOYS",
        status=status, now=NOW, steps=plan_rows(catalog.services["checkout"].plan()),
    )  # fmt: skip
    assert rollback.id is not None
    return progress, repo, rollback.id


def test_a_change_that_reads_the_same_is_not_sent_again(
    tmp_path: Path, slack: SlackSimulator
) -> None:
    progress, repo, rollback_id = one_rollback(
        tmp_path, slack, "running", edits_per_minute=240, burst=3
    )
    progress.changed(rollback_id)  # posts the message, then finds nothing new to edit
    assert progress.flush(timeout=15)
    progress.changed(rollback_id, is_final=True)  # still the same state
    assert progress.flush(timeout=15)
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert slack.calls_to("chat.update") == []

    repo.set_rollback_status(rollback_id, "succeeded", NOW)
    progress.changed(rollback_id, is_final=True)
    assert progress.flush(timeout=15)
    (edit,) = slack.calls_to("chat.update")
    assert "SUCCEEDED" in str(edit.params["text"])


def test_closing_delivers_the_final_state_and_leaves_no_thread_behind(
    tmp_path: Path, slack: SlackSimulator
) -> None:
    progress, _, rollback_id = one_rollback(tmp_path, slack, "succeeded")
    progress.changed(rollback_id, is_final=True)
    progress.close()
    assert not progress.is_running
    (post,) = slack.calls_to("chat.postMessage")
    assert "SUCCEEDED" in str(post.params["text"])


def test_a_waiting_rollbacks_clock_alone_changes_its_message_a_few_times_a_minute(
    tmp_path: Path, slack: SlackSimulator
) -> None:
    """Seconds ticking are not news: the shown clock moves in 15 s steps, so one minute of a
    waiting rollback (the engine says "changed" every second) is at most 4 edits, not 30."""
    from datetime import timedelta

    from pydantic import SecretStr

    now = [NOW]
    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    migrate(engine)
    repo = Repository(engine)
    catalog = parse_catalog(catalog_yaml(service_yaml("checkout", None)))
    client = slack_web_client(SecretStr(BOT_TOKEN), slack.api_url)
    progress = SlackProgress(client, repo, catalog, lambda: now[0], edits_per_minute=600)
    rollback = repo.create_rollback(
        service="checkout", kind="immediate", strategy="undo", requested_by="U1",
        reason="", target_revision=None, assessment_id=None, channel_id="C0DEPLOYS",
        status="running", now=NOW, steps=plan_rows(catalog.services["checkout"].plan()),
    )  # fmt: skip
    assert rollback.id is not None
    progress.changed(rollback.id)
    assert progress.flush(timeout=15)
    for second in range(1, 61):  # a minute of a waiting step, one "changed" a second
        now[0] = NOW + timedelta(seconds=second)
        progress._last_edit.clear()  # no pacing in the way: only what is shown decides
        progress.changed(rollback.id)
        assert progress.flush(timeout=15)

    assert len(slack.calls_to("chat.update")) == 4  # at 15, 30, 45 and 60 s
    progress.close()


def test_a_post_slack_took_but_answered_500_is_found_not_posted_twice(
    tmp_path: Path, slack: SlackSimulator
) -> None:
    """Slack stored the message and the answer was lost: the retry finds it by its metadata
    marker, so there is one progress message, edited to the end (none left on RUNNING)."""
    progress, repo, rollback_id = one_rollback(tmp_path, slack, "running", edits_per_minute=600)
    slack.inject("chat.postMessage", status=500, is_applied=True)
    progress.changed(rollback_id)
    assert progress.flush(timeout=15)
    repo.set_rollback_status(rollback_id, "succeeded", NOW)
    progress.changed(rollback_id, is_final=True)
    assert progress.flush(timeout=15)

    (message,) = [m for m in slack.messages("C0DEPLOYS") if "Rollback #" in m["text"]]
    assert "SUCCEEDED" in message["text"]
    rollback = repo.get_rollback(rollback_id)
    assert rollback is not None and rollback.progress_ts == message["ts"]
    assert slack.calls_to("conversations.history")  # it looked before posting again
    progress.close()


def test_a_thread_note_outlives_passing_slack_trouble_and_is_posted_once(
    tmp_path: Path, slack: SlackSimulator
) -> None:
    """One failure the note never reached Slack (503 x 3, past the client's own retries), then
    one that landed but lost its answer (500): the note is in the thread once."""
    progress, _, rollback_id = one_rollback(tmp_path, slack, "running", edits_per_minute=600)
    assert progress.anchor(rollback_id)
    slack.inject("chat.postMessage", status=503, times=3)
    slack.inject("chat.postMessage", status=500, is_applied=True)
    progress.note(rollback_id, "checkout-api: revision 3 → template of revision 2")
    assert progress.flush(timeout=15)

    notes = [m for m in slack.messages("C0DEPLOYS") if "template of revision 2" in m["text"]]
    assert len(notes) == 1 and notes[0].get("thread_ts")
    progress.close()
