"""Every Slack identifier the app registers: slash commands, action ids, callback ids."""

from __future__ import annotations

from enum import StrEnum


class SlashCommand(StrEnum):
    ROLLBACK = "/rollback"


class Action(StrEnum):
    MANUAL_GATE_CONTINUE = "manual_gate_continue"
