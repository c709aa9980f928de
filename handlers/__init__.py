"""Bolt listeners. ``register(app, deps)`` is the only entry point."""

from __future__ import annotations

from slack_bolt import App

from bot.deps import Deps
from handlers import (
    actions,
    approval_actions,
    commands,
    delivery,
    errors,
    home,
    paging,
    reviews,
    views,
)


def register(app: App, deps: Deps) -> None:
    delivery.install(app, deps)  # first: a repeated delivery reaches no listener
    commands.register(app, deps)
    actions.register(app, deps)
    approval_actions.register(app, deps)
    views.register(app, deps)
    home.register(app, deps)
    reviews.register(app, deps)
    paging.register(app, deps)
    errors.register(app, deps)
