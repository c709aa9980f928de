"""Bolt listeners. ``register(app, deps)`` is the only entry point."""

from __future__ import annotations

from slack_bolt import App

from bot.app import Deps
from handlers import actions, commands


def register(app: App, deps: Deps) -> None:
    commands.register(app, deps)
    actions.register(app, deps)
