"""What every step kind shares: the context a run gets, the one a dry-run description gets, and
the ways a step ends other than with its detail (StepFailed, TimedOut, Aborted).

A step may be run again after a crash (the engine cannot know whether the last attempt finished),
so each one checks the world before acting, and records what it is about to do with
``ctx.remember(...)`` first so the next attempt can tell "done already" from "not started".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.adapters.http import HttpClient
from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget
from bot.adapters.prometheus import PrometheusAPI
from bot.catalog.load import Service
from bot.rollback.plan import StepSpec

FIRST_POLL_SECONDS = 0.1
ACCEPTED = "server-side dry run accepted"  # a dry-run line: only where a write was sent and taken


class StepFailed(Exception):
    """The step did not achieve its goal; the message says why, in words, for Slack."""


class TimedOut(StepFailed):
    """``poll_until`` reached the step's deadline (a StepFailed the step may reword)."""


class Aborted(Exception):
    """Someone asked to abort; raised out of waits and between steps."""


@dataclass
class StepContext:
    rollback_id: int
    position: int
    service: Service
    target: KubeTarget
    kube: KubernetesClient
    http: HttpClient
    prometheus: PrometheusAPI | None
    clock: Callable[[], datetime]
    wait: Callable[[float], None]  # interruptible by abort: raises Aborted
    remember: Callable[[Mapping[str, Any]], None]  # persist detail before acting
    previous: Mapping[str, Any] = field(default_factory=dict)  # detail of an earlier attempt
    timeout_seconds: float = 120.0
    note: Callable[[str], None] = lambda text: None  # a line for the progress thread
    fresh_detail: Callable[[], Mapping[str, Any]] = dict  # the step's detail as stored now
    monotonic: Callable[[], float] = time.monotonic

    def deadline(self) -> float:
        return self.monotonic() + self.timeout_seconds

    def poll_until(self, check: Callable[[], str | None], interval: float, what: str) -> str:
        """Call ``check`` until it returns a message (done) or the step times out.

        ``check`` returns None while not done and raises StepFailed for a final failure; the
        deadline raises TimedOut. The pause starts at 0.1 s and doubles up to ``interval``: a
        quick rollout is seen at once, a slow one is not polled hard.
        """
        deadline = self.deadline()
        pause = min(FIRST_POLL_SECONDS, interval)
        while True:
            done = check()
            if done is not None:
                return done
            if self.monotonic() >= deadline:
                raise TimedOut(f"{what}: not done after {self.timeout_seconds:g} s")
            self.wait(min(pause, max(0.0, deadline - self.monotonic())))
            pause = min(pause * 2, interval)


@dataclass(frozen=True)
class DryRun:
    """What a describe function may use for ``/rollback run --dry-run``: it reads the cluster
    and sends every write as a server-side dry run (``dry_run=True``), never a real one."""

    kube: KubernetesClient
    service: Service
    target: KubeTarget

    def deployment(self, params: Mapping[str, Any]) -> str:
        return str(params.get("deployment") or self.service.spec.deployment)


# ``run(ctx, params) -> detail``: idempotent (see above); the detail is stored with the step.
StepRunner = Callable[[StepContext, Mapping[str, Any]], dict[str, Any]]
# ``describe(dry, step) -> text`` for the dry run: one line of Slack mrkdwn (escaped), with
# what the step would change. KubeError and StepFailed mean "would fail now".
Describe = Callable[[DryRun, StepSpec], str]
