"""``console --demo``: checkout's rollback can be rehearsed in the demo's staging namespace."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.__main__ import main


def test_the_demo_rehearses_checkout_in_staging(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "rehearse.txt"
    script.write_text("/rollback drill checkout --rehearse weekly staging test\n")

    assert main(["console", "--demo", "--script", str(script)]) == 0

    out = capsys.readouterr().out
    assert "Rehearsal #1 of *checkout* started in staging" not in out  # rendered, not mrkdwn
    assert "Rehearsal #1 of checkout started in staging (namespace shop-staging" in out
    assert "REHEARSAL #1 OF CHECKOUT@STAGING — SUCCEEDED" in out
    assert "Rehearsal #1 of checkout in staging succeeded" in out
    assert "within the 15 min" in out  # (the console wraps the line)
    assert ":arrows_counterclockwise:" not in out
    assert "Production was not touched." in out
