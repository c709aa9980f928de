"""`rollback-bot console --demo --script`: the same app, rendered for a terminal."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bot.__main__ import main
from bot.adapters.console import find_button
from bot.console import console_session
from bot.settings import Settings
from storage.guard_models import GuardStatus


def test_demo_script_assesses_every_demo_service(tmp_path: Path, capsys: object) -> None:
    script = tmp_path / "demo.txt"
    script.write_text(
        "# comments and blank lines are skipped\n\n"
        "/rollback assess checkout\n/rollback assess search\n"
        "/rollback assess payments\n/rollback assess profile\n/rollback assess nosuch\n"
    )

    rc = main(["console", "--demo", "--script", str(script)])

    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert rc == 0
    assert "IMMEDIATE ROLLBACK — CHECKOUT" in out
    assert "ROLLBACK RECOMMENDED — SEARCH" in out
    assert "MONITOR — PAYMENTS" in out
    assert "CONTINUE — PROFILE" in out
    assert "Unknown service `nosuch`. Known services: `checkout`, `payments`" in out
    assert "<@" not in out and ":red_circle:" not in out  # rendered, not raw mrkdwn


def test_script_with_a_broken_line_exits_non_zero(tmp_path: Path) -> None:
    script = tmp_path / "bad.txt"
    script.write_text("/rollback help\nclick 1\nhello there\n")

    proc = subprocess.run(
        [sys.executable, "-m", "bot", "console", "--demo", "--script", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert proc.returncode == 1
    assert "no button 1" in proc.stdout
    assert "not understood: 'hello there'" in proc.stdout


def test_session_reports_internal_failures() -> None:
    out = io.StringIO()
    with console_session(Settings(), is_demo=True, out=out) as session:
        session.slack.inject("chat.postMessage", status=500, times=10)
        session.handle("/rollback assess profile")
        assert session.errors >= 1
    assert "Slack API chat.postMessage failed" in out.getvalue()


def test_demo_rollback_runs_to_the_end(tmp_path: Path, capsys: object) -> None:
    script = tmp_path / "rollback.txt"
    script.write_text(
        "/rollback run checkout --dry-run\n"
        "/rollback run checkout --immediate 5xx storm\n"
        "/rollback status checkout\n"
    )

    rc = main(["console", "--demo", "--script", str(script)])

    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert rc == 0
    assert "Dry run: rollback of checkout" in out
    assert "revision 3 (app=registry.example.com/checkout:v3) → template of revision 2" in out
    assert "ROLLBACK #1 OF CHECKOUT — SUCCEEDED" in out
    assert "✅ Wait for the rollout" in out


def test_demo_planned_rollback_with_forms(tmp_path: Path, capsys: object) -> None:
    script = tmp_path / "planned.txt"
    script.write_text(
        "/rollback assess search\n"
        "click 1\n"  # Plan rollback: opens the form
        'submit reason="slow since 3.2" window=soon\n'  # refused inside the form
        'submit reason="slow since 3.2"\n'
        "as U0APPROVER1 click 1\n"  # Approve on the request message
        "/rollback history search\n"
    )

    rc = main(["console", "--demo", "--script", str(script)])

    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert rc == 0, [line for line in out.splitlines() if line.startswith("!!")]
    assert "📝 Form “Plan a rollback” opened" in out
    assert "The form was not accepted — window: soon is not a time" in out
    assert "ROLLBACK REQUEST #1 — SEARCH" in out
    assert "Approved by @U0APPROVER1" in out
    assert "#1 search succeeded · planned undo" in out


def test_click_names_a_button_by_label_or_by_message_and_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a rollback the last message with buttons is the review's (Root cause written): the
    page's Acknowledge must still be reachable, by its label or by its number."""
    script = tmp_path / "ack.txt"
    script.write_text(
        "/rollback run checkout --immediate 5xx storm\nclick Acknowledge\nclick 9.1\nclick Nope\n"
    )

    rc = main(["console", "--demo", "--script", str(script)])

    out = capsys.readouterr().out
    assert rc == 1  # the two bad clicks
    # messages with buttons are numbered (the page notice is in the progress message's thread)
    assert "[1]   ↳ (thread) #C0DEPLOYS 📟 Paging level 1/2" in out
    assert "[1.1] Acknowledge" in out
    # the customer update drafts (Publish and Edit: the demo has its own status page) and the
    # review's, in the order their due work ran
    assert re.search(r"\[[2-5]\.1\] Publish   \[[2-5]\.2\] Edit", out)
    assert re.search(r"\[[2-5]\.1\] Root cause", out)
    assert "was acknowledged by @U0ONCALL1. Escalation stopped." in out
    assert "!! no message [9]: messages with buttons are [1]…[5]" in out
    assert (
        "!! no button labelled 'Nope'; buttons: Acknowledge, Edit, Publish, Root cause written"
        in out
    )


def test_click_message_and_button(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "ack.txt"
    script.write_text("/rollback run checkout --immediate 5xx storm\nclick 1.1\n")
    assert main(["console", "--demo", "--script", str(script)]) == 0
    assert "was acknowledged by @U0ONCALL1" in capsys.readouterr().out


def test_a_failed_rollback_fails_the_script() -> None:
    """README: a script exits 1 when a step errored; a rollback that failed is one."""
    out = io.StringIO()
    with console_session(Settings(), is_demo=True, out=out) as session:
        assert session.cluster is not None
        session.cluster.inject("PATCH", r"/deployments/checkout-api$", status=403, times=50)
        session.handle("/rollback run checkout --immediate 5xx storm")
        assert session.errors >= 1
    assert "!! rollback #1 of checkout failed: " in out.getvalue()


def test_lines_are_read_while_a_rollback_runs() -> None:
    """Interactively the next line is taken at once: a running rollback can be aborted."""
    out = io.StringIO()
    with console_session(Settings(), is_demo=True, out=out) as session:
        assert session.cluster is not None
        session.cluster.set_never_ready("shop", "checkout-api")  # the rollout never completes
        session.is_waiting_for_rollbacks = False
        session.handle("/rollback run checkout --immediate 5xx storm")
        engine = session.bot.deps.engine
        assert not engine.wait_idle(0), "the console waited for the rollback"
        session.handle("/rollback abort 1 wrong target")
        deadline = time.monotonic() + 60
        while not engine.wait_idle(0.2):
            session.poll()
            assert time.monotonic() < deadline, "the abort did not stop the rollback"
        session.poll()
        (rollback,) = session.bot.deps.repo.list_rollbacks()
        assert rollback.status == "aborted", rollback.status


def test_interactive_console_reads_stdin_and_counts_errors() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "console", "--demo"],
        input="/rollback help\nhello there\nquit\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "click M.N" in proc.stdout  # the help lists the numbering
    assert "not understood: 'hello there'" in proc.stdout


def test_the_guard_rolls_a_bad_demo_release_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """README's walkthrough: the demo catalog guards every service with 5 s evaluations and
    15 s durations, so `deploy checkout bad` is announced, fired on and rolled back in about
    20 s of real time (a script line waits until the guard fired and its rollback ended)."""
    script = tmp_path / "deploy.txt"
    script.write_text("deploy checkout bad\n/rollback history checkout\n")

    started = time.monotonic()
    rc = main(["console", "--demo", "--script", str(script)])
    took = time.monotonic() - started

    out = capsys.readouterr().out
    assert rc == 0, [line for line in out.splitlines() if line.startswith("!!")]
    assert took < 60, f"the guard took {took:.0f} s"
    assert "🚀 Deployed checkout checkout:v4 (revision 4), a bad release" in out
    assert "Guarding checkout checkout:v4 (revision 4) for 5 min" in out
    assert "error_rate 0.18 > 0.05 for 5s" in out  # the breach counted on screen
    assert re.search(r"Guard fired on checkout checkout:v4 \(revision 4\): error_rate 0\.18 >", out)
    assert "_Reason: automatic rollback by the guard: error_rate 0.18 > 0.05 for " in out
    assert "ROLLBACK #1 OF CHECKOUT — SUCCEEDED" in out
    assert "✅ Error rate back under the high threshold" in out  # the old release is healthy
    assert "#1 checkout succeeded · immediate undo · " in out
    assert "by the automatic guard · approved: no approval needed (the automatic guard)" in out


def test_a_healthy_demo_release_is_only_watched() -> None:
    """Interactively the guard's rounds run between lines: its messages show as they come."""
    out = io.StringIO()
    with console_session(Settings(), is_demo=True, out=out) as session:
        session.is_waiting_for_rollbacks = False
        session.handle("help")
        session.handle("deploy checkout meh")
        assert session.errors == 1
        session.handle("deploy checkout good")
        repo = session.bot.deps.repo
        deadline = time.monotonic() + 45
        # four evaluations 5 s apart: healthy for as long as a breach must hold to fire
        while not any(r.evaluations >= 4 for r in repo.list_guarded(service="checkout")):
            assert time.monotonic() < deadline, out.getvalue()
            session.poll()
            time.sleep(0.2)  # the guard's rounds run in their own thread; this only paces polls
        session.poll()
        (release,) = repo.list_guarded(service="checkout")
        assert release.status == GuardStatus.WATCHING and release.revision == "4"
        assert repo.list_rollbacks() == []
        assert session.errors == 1
    shown = out.getvalue()
    assert "deploy SVC bad|good" in shown  # help lists it
    assert "!! usage: deploy SERVICE bad|good" in shown
    assert "🚀 Deployed checkout checkout:v4 (revision 4), a healthy release" in shown
    assert "Guarding checkout checkout:v4 (revision 4)" in shown
    assert "error_rate > 0.05 for 15 s` — 🟢 now 0.002" in shown
    assert "Guard fired" not in shown and "ROLLBACK #" not in shown


def _message(ts: str, *labels: str) -> dict[str, Any]:
    buttons = [{"type": "button", "text": {"type": "plain_text", "text": t}} for t in labels]
    return {"ts": ts, "blocks": [{"type": "actions", "elements": buttons}]}


def _found(what: str, shown: list[dict[str, Any]], last: dict[str, Any] | None) -> object:
    """(the message's ts, the button's label), or why there is none."""
    found = find_button(what, shown, last)
    return found if isinstance(found, str) else (found[0]["ts"], found[1]["text"]["text"])


def test_find_button_by_number_by_message_and_by_label() -> None:
    first, second = _message("1", "Approve", "Reject"), _message("2", "Acknowledge")
    shown = [first, second]
    assert _found("1", shown, second) == ("2", "Acknowledge")
    assert _found("1.2", shown, second) == ("1", "Reject")
    assert _found("approve", shown, second) == ("1", "Approve")
    assert _found("3.1", shown, second) == "no message [3]: messages with buttons are [1]…[2]"
    assert _found("2", shown, second) == "no button 2: the last message with buttons has 1"
    assert _found("Run anyway", shown, second) == (
        "no button labelled 'Run anyway'; buttons: Acknowledge, Approve, Reject"
    )
    assert _found("", [], None) == "usage: click N | click M.N | click LABEL"


def test_the_demo_publishes_a_customer_update_to_its_own_status_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make demo`: Publish under the draft reaches the demo's loopback status page (strict like
    the tests' one: token, body, Idempotency-Key), which takes it with a 201."""
    script = tmp_path / "publish.txt"
    script.write_text("/rollback run checkout --immediate 5xx storm\nclick Publish\n")

    assert main(["console", "--demo", "--script", str(script)]) == 0

    out = capsys.readouterr().out
    assert "CUSTOMER UPDATE PUBLISHED — RESOLVED" in out
    assert "Published to the status page by @U0ONCALL1 (HTTP 201)." in out
