"""Step kinds: each is an idempotent function ``run(ctx, params) -> detail``.

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

import httpx

from bot.adapters.kubernetes import KubernetesClient, KubeTarget
from bot.adapters.prometheus import PrometheusAPI
from bot.catalog.load import Service

FIRST_POLL_SECONDS = 0.1


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
    http: httpx.Client
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


StepRunner = Callable[[StepContext, Mapping[str, Any]], dict[str, Any]]


def runners() -> dict[str, StepRunner]:
    from bot.execution.steps import control, http, kubernetes, metrics

    return {**kubernetes.RUNNERS, **http.RUNNERS, **metrics.RUNNERS, **control.RUNNERS}
