"""``rollback-bot console``: chat with the real Bolt app locally, no Slack workspace needed.

The console starts the Slack simulator, runs the same app and HTTP server as ``serve`` on a local
port, signs every line like Slack does, and prints what the app sends back: the ack (the private
answer Slack shows the user) and every message the app posts to the Slack API.
"""

from __future__ import annotations

import contextlib
import html
import queue
import re
import secrets
import shlex
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx
from pydantic import SecretStr

from bot.adapters.console import (
    Message,
    buttons_of,
    collect_arrivals,
    describe_form,
    enable_line_editing,
    find_button,
    read_lines_into,
    render_message,
)
from bot.app import BotApp, build_app
from bot.demo.deploys import DemoDeploys
from bot.demo.simulators import start_demo
from bot.rollback.lifecycle import RollbackStatus
from bot.runtime.logs import mask_phone
from bot.runtime.server import HttpServer
from bot.runtime.web import WebApp
from bot.settings import Settings
from bot.sim.kube_api import KubeSimulator
from bot.sim.slack_api import SlackCall, SlackSimulator
from bot.sim.slack_client import SlackRequester
from bot.sim.twilio_api import TwilioSimulator
from bot.sim.twilio_messages import SimMessage
from storage.guard_models import GUARD_ACTOR

HELP = """\
Type /rollback commands as you would in Slack, e.g. `/rollback assess checkout`.
  click N            press button N of the last message that has buttons
  click M.N          press button N of message M (messages with buttons are numbered [M])
  click LABEL        press the button with that label on the newest message that has it
                     (e.g. `click Acknowledge`, `click "Run anyway"`)
  as USER <line>     send <line> as another Slack user (default U0ONCALL1, a responder)
  reply TEXT         answer the last SMS page from that phone (e.g. `reply ACK 4821`)
  submit k=v …       fill in and submit the form a button opened (e.g. `submit reason="bad deploy"`)
  deploy SVC bad|good  (demo) roll a new release out, bad or healthy: the guard watches it
  help | quit
While a rollback runs you can keep typing (e.g. `/rollback abort 1 wrong target`)."""
WAIT_SECONDS = 30.0
GUARD_ROUND_SECONDS = 1.0  # the guard's rounds; each release still has its own interval
DEPLOY_WAIT_SECONDS = 120.0  # --script: a bad demo release is fired on well within this
ROLLBACK_WAIT_SECONDS = 120.0  # the console shows a rollback to its end before the next line
POLL_SECONDS = 1.0  # interactive: how often what the app sent meanwhile is printed
DEFAULT_USER = "U0ONCALL1"
CONSOLE_CHANNEL = "C0DEPLOYS"


@dataclass
class ConsoleSession:
    """One chat: sends lines to the app, prints what comes back; counts failures for --script."""

    bot: BotApp
    slack: SlackSimulator
    requester: SlackRequester
    out: TextIO
    errors: int = 0
    _arrived: queue.Queue[SlackCall] = field(default_factory=queue.Queue)
    _last_with_buttons: dict[str, Any] | None = None
    # every message shown with buttons, numbered from 1 as printed: `click M.N`, `click LABEL`
    _with_buttons: list[dict[str, Any]] = field(default_factory=list)
    _numbered: dict[tuple[str, str], int] = field(default_factory=dict)
    _failed_rollbacks: set[int] = field(default_factory=set)
    # --script waits for each line's rollback to end; interactively the next line is read at once
    is_waiting_for_rollbacks: bool = True
    cluster: KubeSimulator | None = None  # the demo's Kubernetes API
    twilio: TwilioSimulator | None = None  # the demo's phones: SMS pages are printed as they land
    _texts: queue.Queue[SimMessage] = field(default_factory=queue.Queue)
    _last_sms_to: str | None = None
    _open_view: dict[str, Any] | None = None  # the modal a button opened, until submitted
    deploys: DemoDeploys | None = None  # the demo's `deploy SERVICE bad|good`

    def __post_init__(self) -> None:
        self.slack.subscribe(self._arrived.put)
        if self.twilio is not None:
            self.twilio.subscribe(self._texts.put)
        self.repo = self.bot.deps.repo

    def handle(self, line: str) -> bool:
        """Run one line; False when the console should stop."""
        line = line.strip()
        if not line or line.startswith("#"):
            return True
        if line in ("quit", "exit"):
            return False
        if line == "help":
            self._say(HELP)
            return True
        user = DEFAULT_USER
        if line.startswith("as "):
            _, user, line = [*line.split(maxsplit=2), "", ""][:3]
        if line.startswith("click"):
            self._click(line, user)
        elif line.startswith("submit"):
            self._submit(line.removeprefix("submit").strip(), user)
        elif line.startswith("reply ") and self.twilio is not None:
            self._reply_sms(line.removeprefix("reply ").strip())
        elif line.startswith("deploy") and self.deploys is not None:
            self._deploy(line.removeprefix("deploy"))
        elif line.startswith("/rollback"):
            self._send(self.requester.slash(line.removeprefix("/rollback").strip(), user_id=user))
        else:
            self._fail(f"not understood: {line!r} (type `help`)")
        return True

    def _click(self, line: str, user: str) -> None:
        try:
            words = shlex.split(line)[1:]
        except ValueError as exc:
            self._fail(f"usage: click N | click M.N | click LABEL: {exc}")
            return
        found = find_button(" ".join(words), self._with_buttons, self._last_with_buttons)
        if isinstance(found, str):
            self._fail(found)
            return
        message, button = found
        channel = str(message.get("channel", CONSOLE_CHANNEL))
        self._send(self.requester.click(message, button, user_id=user, channel_id=channel))

    def _submit(self, args: str, user: str) -> None:
        """Submit the open modal with ``block_id=value`` pairs; errors come back in the form."""
        if self._open_view is None:
            self._fail("no form is open (a button like Reject or Plan rollback opens one)")
            return
        try:
            pairs = [word.partition("=") for word in shlex.split(args)]
        except ValueError as exc:
            self._fail(f"usage: submit field=value …: {exc}")
            return
        fields = {key: value for key, _, value in pairs}
        resp = self.requester.submit_view(self._open_view, fields, user_id=user)
        if resp.status_code == 200 and resp.content:
            errors = resp.json().get("errors", {})
            listed = "; ".join(f"{field}: {error}" for field, error in errors.items())
            self._say(f"📝 The form was not accepted — {listed}. Fix it and `submit` again.")
            return
        self._open_view = None
        self._send(resp)

    def _reply_sms(self, text: str) -> None:
        if self.twilio is None or self._last_sms_to is None:
            self._fail("no SMS page has arrived yet")
            return
        bot_url = self.requester.events_url.removesuffix("/slack/events")
        resp = self.twilio.send_inbound(f"{bot_url}/twilio/sms", self._last_sms_to, text)
        answer = re.findall(r"<Message>(.*?)</Message>", resp.text, re.S)
        if resp.status_code != 200:
            self._fail(f"the app answered HTTP {resp.status_code}: {resp.text[:200]}")
        for message in answer:
            self._say(f"📱 SMS to {mask_phone(self._last_sms_to)}: {html.unescape(message)}")
        self._send_followups()

    def _send(self, resp: httpx.Response) -> None:
        if resp.status_code != 200:
            self._fail(f"the app answered HTTP {resp.status_code}: {resp.text[:200]}")
        elif resp.content:
            body = resp.json() if "json" in resp.headers.get("content-type", "") else {}
            text = body.get("text", resp.text)
            self._say(render_message(text, body.get("blocks")), prefix="(only you) ")
        self._settle(self.bot.deps.work.failures)

    def _deploy(self, args: str) -> None:
        """A demo release; a script waits for the guard to announce it (a bad one: to fire)."""
        assert self.deploys is not None
        failures_before = self.bot.deps.work.failures
        deployed = self.deploys.deploy(args)
        if isinstance(deployed, str):
            self._fail(deployed)
            return
        self._say(self.deploys.describe(deployed))
        deadline = time.monotonic() + DEPLOY_WAIT_SECONDS
        while self.is_waiting_for_rollbacks and not self.deploys.is_settled(self.repo, deployed):
            if time.monotonic() > deadline:
                self._fail(f"the guard had not settled after {DEPLOY_WAIT_SECONDS:g} s")
                break
            self._print_arrivals(is_final=self.bot.deps.engine.wait_idle(0))
            time.sleep(POLL_SECONDS / 4)  # the guard's rounds (a thread) move it on
        self._settle(failures_before)

    def _settle(self, failures_before: int) -> None:
        """Wait for the work a line started (in a script: its rollbacks too), then show it."""
        if not self.bot.deps.work.wait_idle(WAIT_SECONDS):
            self._fail(f"the app was still working after {WAIT_SECONDS:g} s")
        if not self.is_waiting_for_rollbacks:
            if self.bot.deps.work.failures > failures_before:
                self._fail("the app hit an internal error (see the log above)")
            self.poll()
            return
        deadline = time.monotonic() + ROLLBACK_WAIT_SECONDS
        while not self.bot.deps.engine.wait_idle(0.5):  # show thread notes as they come
            self._print_arrivals(is_final=False)
            if time.monotonic() > deadline:
                self._fail(f"a rollback was still running after {ROLLBACK_WAIT_SECONDS:g} s")
                break
        self._run_due_work()
        if self.bot.deps.work.failures > failures_before:
            self._fail("the app hit an internal error (see the log above)")
        self._print_arrivals()
        self._report_failed_rollbacks()

    def poll(self) -> None:
        """Between lines (interactive): show what arrived; once no rollback runs, run what is
        due as ``serve``'s scheduler would, and say which rollbacks failed."""
        is_idle = self.bot.deps.engine.wait_idle(0)
        if is_idle:
            self.bot.deps.due.tick()
            self.bot.deps.work.wait_idle(WAIT_SECONDS)
        self._print_arrivals(is_final=is_idle)
        if is_idle:
            self._report_failed_rollbacks()

    def _report_failed_rollbacks(self) -> None:
        """A rollback that failed is a failed step of a script (exit code 1)."""
        for rollback in self.repo.list_rollbacks(statuses=[RollbackStatus.FAILED], limit=200):
            if rollback.id is not None and rollback.id not in self._failed_rollbacks:
                self._failed_rollbacks.add(rollback.id)
                self._fail(
                    f"rollback #{rollback.id} of {rollback.service} failed: {rollback.error}"
                )

    def _run_due_work(self) -> None:
        """Run what is due now (review documents, notices) before the next line, as the
        scheduler of ``serve`` would within seconds; later items wait for their time."""
        for _ in range(5):
            # what the engine handed to the work pool at the end (it may hold a claim) first
            self.bot.deps.work.wait_idle(WAIT_SECONDS)
            if self.bot.deps.due.tick() == 0:
                self.bot.deps.work.wait_idle(WAIT_SECONDS)
                return
            self.bot.deps.engine.wait_idle(ROLLBACK_WAIT_SECONDS)

    def _send_followups(self) -> None:
        self.bot.deps.work.wait_idle(WAIT_SECONDS)
        self._print_arrivals()

    def _print_arrivals(self, *, is_final: bool = True) -> None:
        """Print what the app sent since the last line; a message edited several times is shown
        once, as it ended up (like a Slack channel you look at after the fact). While a rollback
        runs (``is_final`` False) edits are held back and only new messages are printed."""
        for key, (prefix, message) in self._collect_arrivals(is_final).items():
            self._show_message(key, prefix, message)
        while not self._texts.empty():
            sms = self._texts.get_nowait()
            self._last_sms_to = sms.to
            self._say(f"📱 SMS from rollback-bot to {mask_phone(sms.to)}: {sms.body}")

    def _collect_arrivals(self, is_final: bool) -> dict[tuple[str, str], tuple[str, Message]]:
        """What arrived to show, by (channel, ts); failed calls and opened forms on the way."""
        calls: list[SlackCall] = []
        with contextlib.suppress(queue.Empty):
            while True:
                calls.append(self._arrived.get_nowait())
        found = collect_arrivals(calls, is_final=is_final)
        for call in found.held:  # edits shown once the rollback has ended
            self._arrived.put(call)
        for failure in found.failures:
            self._fail(failure)
        for view in found.forms:
            self._open_view = view
            self._say(describe_form(view))
        return found.shown

    def _show_message(self, key: tuple[str, str], prefix: str, message: Message) -> None:
        """Print one message; one with buttons gets its number (an edit keeps it)."""
        number = None
        if buttons_of(message.get("blocks") or []):
            self._last_with_buttons = message
            number = self._numbered.get(key)
            if number is None:
                self._with_buttons.append(message)
                number = self._numbered[key] = len(self._with_buttons)
            else:  # an edit: its buttons now are the edited ones
                self._with_buttons[number - 1] = message
            prefix = f"[{number}] {prefix}"
        text = render_message(str(message.get("text", "")), message.get("blocks"), number=number)
        self._say(text, prefix)

    def _say(self, text: str, prefix: str = "") -> None:
        print(f"{prefix}{text}\n", file=self.out, flush=True)

    def _fail(self, message: str) -> None:
        self.errors += 1
        print(f"!! {message}\n", file=self.out, flush=True)


@contextmanager
def console_session(settings: Settings, *, is_demo: bool, out: TextIO) -> Iterator[ConsoleSession]:
    """Start the simulators (all of them with ``is_demo``), the app and its HTTP server."""
    with ExitStack() as stack:
        slack = stack.enter_context(SlackSimulator(bot_token="xoxb-console"))
        # the demo's people (incident-channel invites) and the guard (its rollbacks' reviews)
        for user in ("U0ONCALL1", "U0APPROVER1", "U0APPROVER2", GUARD_ACTOR):
            slack.add_user(user, user.lower())
        secret = secrets.token_hex(16)
        overrides: dict[str, Any] = {
            "slack_bot_token": SecretStr("xoxb-console"),
            "slack_signing_secret": SecretStr(secret),
            "slack_api_url": slack.api_url,
        }
        demo = start_demo(stack) if is_demo else None
        if demo is not None:
            overrides |= demo.settings
        bot = build_app(
            settings.model_copy(update=overrides),
            catalog=demo.catalog if demo else None,
            kube=demo.kube if demo else None,
        )
        stack.callback(bot.close)
        stack.callback(_run_guard_rounds(bot))  # stopped before the app closes
        server = HttpServer(WebApp(bot), "127.0.0.1", 0, threads=8).start()
        stack.callback(server.stop)
        http = stack.enter_context(httpx.Client(timeout=10))
        requester = SlackRequester(
            server.url, secret, http, response_url=slack.response_url("console")
        )
        yield ConsoleSession(
            bot,
            slack,
            requester,
            out,
            cluster=demo.cluster if demo else None,
            twilio=demo.phones if demo else None,
            deploys=DemoDeploys(demo.catalog, demo.kube, demo.world) if demo else None,
        )


def _run_guard_rounds(bot: BotApp) -> Callable[[], None]:
    """The guard's rounds as ``serve`` runs them, in the work pool (never two at once). The first
    has ended on return: the releases running now are not new to the guard. Returns a stop."""
    stop, first = threading.Event(), threading.Event()

    def rounds() -> None:
        while True:
            with contextlib.suppress(RuntimeError):  # the pool shut down: the console closes
                bot.deps.work.submit("guard round", bot.guard.tick, lane="bulk").result()
            first.set()
            if stop.wait(GUARD_ROUND_SECONDS):
                return

    thread = threading.Thread(target=rounds, name="guard-rounds", daemon=True)
    thread.start()
    first.wait(WAIT_SECONDS)

    def stop_rounds() -> None:
        stop.set()
        thread.join(WAIT_SECONDS)

    return stop_rounds


def run_console(settings: Settings, *, is_demo: bool, script: str | None) -> int:
    out = sys.stdout
    with console_session(settings, is_demo=is_demo, out=out) as session:
        if script is not None:
            for line in Path(script).read_text(encoding="utf-8").splitlines():
                if line.strip() and not line.startswith("#"):
                    print(f"rollback> {line}", file=out)
                if not session.handle(line):
                    break
            return 1 if session.errors else 0
        services = ", ".join(session.bot.deps.catalog.names)
        print(f"rollback-bot console — services: {services}\n{HELP}\n", file=out)
        enable_line_editing()
        session.is_waiting_for_rollbacks = False
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=read_lines_into, args=(lines,), daemon=True).start()
        while True:
            try:
                typed = lines.get(timeout=POLL_SECONDS)
            except queue.Empty:
                session.poll()  # a running rollback's notes, SMS pages, due notices
                continue
            if typed is None or not session.handle(typed):
                break
        return 1 if session.errors else 0
