"""The shared handles every feature receives: ``Deps`` (built by ``bot.app.build_app``), ``Route``
(a WSGI route besides Slack's) and ``Clock``. This module imports no feature module, so any feature
may import it without closing a circle."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.slack.lookups import UserGroupMembers
from bot.adapters.slack.web import SlackClient
from bot.assessment.signals import SignalReader
from bot.catalog.load import Catalog
from bot.execution.engine import Engine
from bot.runtime.due import DueWorkRunner
from bot.runtime.metrics import Metrics
from bot.runtime.work import BackgroundWork
from bot.settings import Settings
from storage.models import Rollback
from storage.repository import Repository

Clock = Callable[[], datetime]
# A WSGI route besides Slack's: (method, path prefix, handler(environ, start_response)).
WSGIHandler = Callable[[Any, Any], Iterable[bytes]]


@dataclass(frozen=True)
class Route:
    method: str
    prefix: str
    handler: WSGIHandler


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Deps:
    """Everything a handler may use. Handlers get this, never globals."""

    settings: Settings
    catalog: Catalog
    repo: Repository
    reader: SignalReader
    work: BackgroundWork
    metrics: Metrics
    slack: SlackClient
    kube: KubernetesClient
    engine: Engine
    due: DueWorkRunner
    groups: UserGroupMembers
    clock: Clock = utcnow
    routes: list[Route] = field(default_factory=list)
    slack_team_url: str = ""  # from auth.test at start-up; message links are built from it
    closers: list[Callable[[], None]] = field(default_factory=list)

    def kick_due_work(self) -> None:
        """Run due work just stored now, not at the scheduler's next tick."""
        self.work.submit("due work", self.due.tick)

    def audit(
        self,
        kind: str,
        about: Rollback | str,
        actor: str | None = None,
        /,
        *,
        channel_id: str | None = None,
        message_ts: str | None = None,
        **detail: Any,
    ) -> None:
        """Record an audit event, stamped now, about a rollback (or a service, before any
        rollback exists); ``channel_id``/``message_ts`` name the message acted on.
        The first three are positional-only: ``detail`` may carry a "kind" or an "actor" of its
        own."""
        self.repo.add_audit_event(
            kind,
            now=self.clock(),
            service=about.service if isinstance(about, Rollback) else about,
            rollback_id=about.id if isinstance(about, Rollback) else None,
            actor=actor,
            channel_id=channel_id,
            message_ts=message_ts,
            detail=detail,
        )
