"""Every Slack identifier the app registers: slash commands, action ids, callback ids."""

from __future__ import annotations

from enum import StrEnum

from bot.approvals import blocks as ab
from bot.customer import blocks as customer
from bot.guard.firing import KEEP_ACTION, ROLLBACK_NOW_ACTION
from bot.notify.blocks import MANUAL_GATE_ACTION
from bot.paging.messages import PAGE_ACK_ACTION
from bot.review.publish import ROOT_CAUSE_WRITTEN_ACTION


class SlashCommand(StrEnum):
    ROLLBACK = "/rollback"


class Action(StrEnum):
    # the button itself is built by bot.notify.blocks, which owns the value
    MANUAL_GATE_CONTINUE = MANUAL_GATE_ACTION
    APPROVE = ab.APPROVE_ACTION
    REJECT = ab.REJECT_ACTION
    PLAN_ROLLBACK = ab.PLAN_ACTION
    RUN_NOW = ab.RUN_NOW_ACTION
    ASSESS_AGAIN = ab.ASSESS_AGAIN_ACTION
    CONFIRM_RUN = ab.CONFIRM_RUN_ACTION
    CONFIRM_CANCEL = ab.CONFIRM_CANCEL_ACTION
    PAGE_ACKNOWLEDGE = PAGE_ACK_ACTION
    ROOT_CAUSE_WRITTEN = ROOT_CAUSE_WRITTEN_ACTION
    GUARD_ROLLBACK_NOW = ROLLBACK_NOW_ACTION
    GUARD_KEEP = KEEP_ACTION
    CUSTOMER_PUBLISH = customer.PUBLISH_ACTION
    CUSTOMER_EDIT = customer.EDIT_ACTION


class View(StrEnum):
    PLAN_ROLLBACK = ab.PLAN_VIEW
    REJECT_ROLLBACK = ab.REJECT_VIEW
    CUSTOMER_EDIT = customer.EDIT_VIEW
