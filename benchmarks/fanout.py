"""Fan-out of one critical notice: 10 Slack channels and 20 phones, every API call delayed.

The Slack and Twilio simulators answer every API call after ``--delay`` seconds (100 ms by
default), like a distant API. Measured, in the same run:

1. the bot's own path: the engine's listener is told a critical rollback started
   (``Notifier.rollback_started``), which stores the due work and kicks a tick; the critical
   notice goes to the service channel and its 9 critical channels, and the paging ladder's first
   level (20 contacts) is sent by SMS. The clock stops when the simulators have recorded all 10
   posts and all 20 SMS.
2. the same 10 posts and 20 SMS sent one after another with the same clients.

    python benchmarks/fanout.py [--runs 5] [--delay 0.1]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import threading
import time
from pathlib import Path

from pydantic import SecretStr

from bot.adapters.slack.web import slack_web_client
from bot.adapters.twilio import TwilioSMS
from bot.app import BotApp, build_app
from bot.catalog.load import parse_catalog
from bot.notify.notifications import Notifier
from bot.runtime.logs import setup_logging
from bot.settings import Settings
from bot.sim.slack_api import SlackCall, SlackSimulator
from bot.sim.twilio_api import TwilioSimulator
from bot.sim.twilio_messages import SimMessage
from storage.repo.records import NewStep

CHANNELS = ["C0DEPLOYS", *(f"C0CRIT{i:02d}" for i in range(1, 10))]
PHONES = [f"+1555010{i:04d}" for i in range(1, 21)]
TARGET_SECONDS = 0.5


def catalog() -> str:
    oncall = "\n".join(
        f'      - {{name: Responder {i}, phone: "{p}"}}' for i, p in enumerate(PHONES)
    )
    return f"""defaults:
  channel: C0DEPLOYS
  notifications:
    critical_channels: [{", ".join(CHANNELS[1:])}]
    incident_channel: false
services:
  checkout:
    deployment: checkout-api
    responders: [U0ONCALL1]
    oncall:
{oncall}
"""


class Recorder:
    """When each critical post and each SMS reached the simulators."""

    def __init__(self) -> None:
        self.posts: list[float] = []
        self.sms: list[float] = []
        self._cond = threading.Condition()

    def on_slack(self, call: SlackCall) -> None:
        is_post = call.method == "chat.postMessage" and call.response.get("ok")
        if is_post and "CRITICAL" in str(call.params.get("text", "")):
            with self._cond:
                self.posts.append(time.monotonic())
                self._cond.notify_all()

    def on_sms(self, message: SimMessage) -> None:
        with self._cond:
            self.sms.append(time.monotonic())
            self._cond.notify_all()

    def reset(self) -> None:
        with self._cond:
            self.posts.clear()
            self.sms.clear()

    def wait_all(self, timeout: float = 30.0) -> None:
        with self._cond:
            is_done = self._cond.wait_for(
                lambda: len(self.posts) >= len(CHANNELS) and len(self.sms) >= len(PHONES),
                timeout=timeout,
            )
        if not is_done:
            raise RuntimeError(f"only {len(self.posts)} posts and {len(self.sms)} SMS arrived")


def concurrent_run(bot: BotApp, notifier: Notifier, recorder: Recorder) -> tuple[float, ...]:
    deps = bot.deps
    rollback = deps.repo.create_rollback(
        service="checkout",
        kind="immediate",
        strategy="undo",
        requested_by="U0ONCALL1",
        status="running",
        now=deps.clock(),
        reason="error rate 25 % after v3",
        steps=[NewStep("application", "Roll back", "rollout_undo")],
    )
    assert rollback.id is not None
    recorder.reset()
    started = time.monotonic()
    notifier.rollback_started(rollback)
    told = time.monotonic() - started
    recorder.wait_all()
    slack = max(recorder.posts) - started
    sms = max(recorder.sms) - started
    assert deps.work.wait_idle(30)
    deps.repo.set_rollback_status(rollback.id, "succeeded", deps.clock())
    return told, slack, sms, max(slack, sms)


def sequential_run(settings: Settings, slack_url: str, twilio: TwilioSimulator) -> float:
    assert settings.slack_bot_token is not None
    client = slack_web_client(settings.slack_bot_token, slack_url)
    sms = TwilioSMS(twilio.account_sid, twilio.auth_token, "+15550009999", twilio.url)
    started = time.monotonic()
    for channel in CHANNELS:
        client.chat_postMessage(channel=channel, text="CRITICAL: sequential baseline")
    for phone in PHONES:
        sms.send_sms(phone, "CRITICAL: sequential baseline")
    elapsed = time.monotonic() - started
    sms.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--delay", type=float, default=0.1, help="seconds per API call")
    args = parser.parse_args()
    setup_logging("ERROR")
    recorder = Recorder()
    with (
        SlackSimulator(bot_token="xoxb-bench") as slack,
        TwilioSimulator(is_sending_callbacks=False) as twilio,
        tempfile.TemporaryDirectory() as tmp,
    ):
        slack.subscribe(recorder.on_slack)
        twilio.subscribe(recorder.on_sms)
        settings = Settings(
            slack_bot_token=SecretStr("xoxb-bench"),
            slack_signing_secret=SecretStr(secrets.token_hex(16)),
            slack_api_url=slack.api_url,
            database_url=f"sqlite:///{Path(tmp) / 'bench.db'}",
            twilio_account_sid=twilio.account_sid,
            twilio_auth_token=SecretStr(twilio.auth_token),
            twilio_from_number="+15550009999",
            twilio_api_url=twilio.url,
        )
        bot = build_app(settings, catalog=parse_catalog(catalog(), "bench.yaml"))
        (notifier,) = [x for x in bot.deps.engine.listeners if isinstance(x, Notifier)]
        slack.call_delay_seconds = args.delay
        twilio.delay_seconds = args.delay
        try:
            concurrent_run(bot, notifier, recorder)  # warm-up: connections, template cache
            runs = [concurrent_run(bot, notifier, recorder) for _ in range(args.runs)]
            sequential = [sequential_run(settings, slack.api_url, twilio) for _ in range(2)]
        finally:
            bot.close()

    def ms(values: list[float]) -> str:
        return (
            f"median {statistics.median(values) * 1000:6.0f} ms, max {max(values) * 1000:6.0f} ms"
        )

    print(
        f"fan-out of one critical notice: {len(CHANNELS)} channels + {len(PHONES)} phones,"
        f" {args.delay * 1000:.0f} ms per API call, {args.runs} runs"
    )
    print(f"  listener returned in      {ms([r[0] for r in runs])}")
    print(f"  last Slack post after     {ms([r[1] for r in runs])}")
    print(f"  last SMS after            {ms([r[2] for r in runs])}")
    print(f"  concurrent (bot) total    {ms([r[3] for r in runs])}")
    print(f"  sequential, same clients  {ms(sequential)}")
    totals = [r[3] for r in runs]
    print(f"  speed-up {statistics.median(sequential) / statistics.median(totals):.1f}x")
    for label, values in (("Slack half", [r[1] for r in runs]), ("whole fan-out", totals)):
        worst = max(values)
        verdict = "met" if worst <= TARGET_SECONDS else "MISSED"
        print(
            f"  {label}: target ≤ {TARGET_SECONDS * 1000:.0f} ms {verdict}"
            f" (worst {worst * 1000:.0f} ms)"
        )


if __name__ == "__main__":
    main()
