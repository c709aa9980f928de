"""Every Slack identifier the app registers: slash commands, action ids, callback ids."""

from __future__ import annotations

from enum import StrEnum

from bot.notify.blocks import MANUAL_GATE_ACTION


class SlashCommand(StrEnum):
    ROLLBACK = "/rollback"


class Action(StrEnum):
    # the button itself is built by bot.notify.blocks, which owns the value
    MANUAL_GATE_CONTINUE = MANUAL_GATE_ACTION
