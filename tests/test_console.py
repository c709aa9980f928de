"""`rollback-bot console --demo --script`: the same app, rendered for a terminal."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from bot.__main__ import main
from bot.console import console_session
from bot.settings import Settings


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
    assert rc == 0, out[-2000:]
    assert "📝 Form “Plan a rollback” opened" in out
    assert "The form was not accepted — window: soon is not a time" in out
    assert "ROLLBACK REQUEST #1 — SEARCH" in out
    assert "Approved by @U0APPROVER1" in out
    assert "#1 search succeeded · planned undo" in out
