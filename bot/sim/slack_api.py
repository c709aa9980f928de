"""A local Slack Web API that the real `slack_sdk.WebClient` and `slack_bolt.App` can talk to.

Point a client at it with `WebClient(token=sim.bot_token, base_url=sim.api_url)`. Every request is
recorded as a `SlackCall`; tests wait for calls with `wait_for` and read the resulting workspace
(messages, views, canvases, files) through the accessors. Failures (429, 5xx, Slack error codes)
are injected per method with `inject` and `inject_error`.

Besides `/api/<method>` the server answers the two non-API URLs Slack hands out:
`/upload/<file_id>` (from files.getUploadURLExternal, recorded as method "upload_url") and
`/response/<name>` (from `response_url(name)`, recorded as method "response_url").
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.sim.loopback import LoopbackSimulator
from bot.sim.slack_blocks import block_errors, invalid
from bot.sim.slack_http import Answer, SlackServer, parse_params
from bot.sim.slack_methods import call, is_supported
from bot.sim.slack_store import Params, SlackWorkspace

log = logging.getLogger(__name__)

_DEFAULT_ERRORS = {429: "ratelimited", 500: "internal_error", 503: "service_unavailable"}


@dataclass(frozen=True)
class SlackCall:
    """One request the simulator answered, with the answer it gave."""

    method: str
    params: dict[str, Any]
    status: int
    response: dict[str, Any]
    path: str = ""


@dataclass
class _Injected:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    remaining: int
    is_applied: bool = False  # the call takes effect, and this answer is sent all the same


class SlackSimulator(LoopbackSimulator):
    """Slack Web API on 127.0.0.1:<random port>, recording every call."""

    def __init__(
        self,
        bot_token: str = "xoxb-test",
        team_id: str = "T0TEST",
        bot_user_id: str = "U0BOT",
        is_paid_plan: bool = True,
        *,
        is_strict_channels: bool = False,
        call_delay_seconds: float = 0.0,
    ) -> None:
        self.bot_token = bot_token
        # every /api/ call waits this long before answering, like a distant Slack (benchmarks)
        self.call_delay_seconds = call_delay_seconds
        self._workspace = SlackWorkspace(
            team_id=team_id,
            bot_user_id=bot_user_id,
            is_paid_plan=is_paid_plan,
            is_strict_channels=is_strict_channels,
        )
        self._calls: list[SlackCall] = []
        self._lock = threading.Lock()
        self._recorded = threading.Condition(self._lock)
        self._injected: dict[str, deque[_Injected]] = {}
        self._subscribers: list[Callable[[SlackCall], None]] = []
        self._server: SlackServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> SlackSimulator:
        if self._server is not None:
            raise RuntimeError("SlackSimulator already started")
        self._server = SlackServer(self._serve)
        # A short poll interval keeps stop() fast; the loop is idle otherwise.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="slack-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
        self._server = self._thread = None

    @property
    def api_url(self) -> str:
        """The `base_url` for WebClient (it must end with a slash)."""
        return f"{self.url}/api/"

    def response_url(self, name: str) -> str:
        """A response_url to put in simulated payloads; POSTs to it are recorded."""
        return f"{self.url}/response/{name}"

    # -- workspace set-up ------------------------------------------------------------------------

    @property
    def team_id(self) -> str:
        return self._workspace.team_id

    @property
    def bot_user_id(self) -> str:
        return self._workspace.bot_user_id

    @property
    def bot_id(self) -> str:
        return self._workspace.bot_id

    @property
    def is_paid_plan(self) -> bool:
        return self._workspace.is_paid_plan

    @is_paid_plan.setter
    def is_paid_plan(self, value: bool) -> None:
        with self._lock:
            self._workspace.is_paid_plan = value

    @property
    def is_strict_channels(self) -> bool:
        return self._workspace.is_strict_channels

    @is_strict_channels.setter
    def is_strict_channels(self, value: bool) -> None:
        with self._lock:
            self._workspace.is_strict_channels = value

    def add_channel(
        self,
        channel_id: str,
        name: str,
        *,
        is_private: bool = False,
        is_archived: bool = False,
        has_bot: bool = True,
    ) -> None:
        """A channel (``has_bot``: the bot is a member; a private one without it is invisible
        to the bot's token, as in Slack)."""
        with self._lock:
            self._workspace.add_channel(
                channel_id, name, is_private=is_private, is_archived=is_archived, has_bot=has_bot
            )

    def add_user(
        self,
        user_id: str,
        name: str,
        real_name: str | None = None,
        tz: str = "UTC",
        *,
        email: str | None = None,
    ) -> None:
        """Register (or replace) a user for users.info, conversations.invite and DMs."""
        with self._lock:
            self._workspace.add_user(user_id, name, real_name, tz, email=email)

    def add_usergroup(self, group_id: str, users: list[str]) -> None:
        with self._lock:
            self._workspace.usergroups[group_id] = list(users)

    # -- failure injection -----------------------------------------------------------------------

    def inject(
        self,
        method: str,
        *,
        status: int = 429,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
        is_applied: bool = False,
    ) -> None:
        """Answer the next `times` calls to `method` with this status, body and headers.

        A 429 gets `Retry-After: 0` unless headers say otherwise: Slack always sends the header,
        and 0 keeps retrying tests fast. ``is_applied``: the call takes effect before the
        answer is replaced (Slack accepted a post but the answer was lost: a 500, a timeout).
        """
        if body is None:
            body = {"ok": False, "error": _DEFAULT_ERRORS.get(status, f"http_{status}")}
        if headers is None:
            headers = {"Retry-After": "0"} if status == 429 else {}
        with self._lock:
            queue = self._injected.setdefault(method, deque())
            queue.append(_Injected(status, body, headers, times, is_applied))

    def inject_error(self, method: str, error: str, times: int = 1) -> None:
        """Answer the next `times` calls to `method` with 200 `{"ok": false, "error": error}`."""
        self.inject(method, status=200, body={"ok": False, "error": error}, headers={}, times=times)

    def _take_injected(self, method: str) -> tuple[Answer, bool] | None:
        with self._lock:
            queue = self._injected.get(method)
            if not queue:
                return None
            injected = queue[0]
            injected.remaining -= 1
            if injected.remaining <= 0:
                queue.popleft()
            answer = Answer(injected.status, copy.deepcopy(injected.body), dict(injected.headers))
            return answer, injected.is_applied

    # -- recorded calls --------------------------------------------------------------------------

    @property
    def calls(self) -> list[SlackCall]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[SlackCall]:
        with self._lock:
            return [call for call in self._calls if call.method == method]

    def wait_for(
        self,
        method: str,
        predicate: Callable[[SlackCall], bool] | None = None,
        timeout: float = 5.0,
    ) -> SlackCall:
        """The first recorded call to `method` matching `predicate`, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        with self._recorded:
            while True:
                for call in self._calls:
                    if call.method == method and (predicate is None or predicate(call)):
                        return call
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    recorded = [call.method for call in self._calls]
                    matching = " matching the predicate" if predicate is not None else ""
                    raise AssertionError(
                        f"no {method} call{matching} within {timeout}s; recorded: {recorded}"
                    )
                self._recorded.wait(remaining)

    def subscribe(self, callback: Callable[[SlackCall], None]) -> None:
        """Call `callback` after every recorded call, on the server's request thread."""
        with self._lock:
            self._subscribers.append(callback)

    def _record(self, call: SlackCall) -> None:
        with self._recorded:
            self._calls.append(call)
            self._recorded.notify_all()
            subscribers = list(self._subscribers)
        # Outside the lock, so a subscriber may read the simulator's state.
        for callback in subscribers:
            try:
                callback(call)
            except Exception:
                log.exception("SlackSimulator subscriber %r failed on %s", callback, call.method)

    # -- workspace state -------------------------------------------------------------------------

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """Current messages of a channel (id, name or DM user id), oldest first, with replies."""
        with self._lock:
            found = self._workspace.find_channel(channel)
            return copy.deepcopy(self._workspace.messages[found.id]) if found else []

    def ephemerals(self, channel: str) -> list[dict[str, Any]]:
        with self._lock:
            found = self._workspace.find_channel(channel)
            return copy.deepcopy(self._workspace.ephemerals.get(found.id, [])) if found else []

    def channel(self, channel: str) -> dict[str, Any] | None:
        """The channel as conversations.info shows it, plus its `members`."""
        with self._lock:
            found = self._workspace.find_channel(channel)
            if found is None:
                return None
            return {**found.to_api(self.bot_user_id), "members": sorted(found.members)}

    def home_view(self, user_id: str) -> dict[str, Any] | None:
        with self._lock:
            return copy.deepcopy(self._workspace.home_views.get(user_id))

    def canvas(self, canvas_id: str) -> dict[str, Any] | None:
        """A canvas: id, title, markdown, channel_id, access {id: level} and raw edit changes."""
        with self._lock:
            return copy.deepcopy(self._workspace.canvases.get(canvas_id))

    def files(self, channel: str) -> list[dict[str, Any]]:
        """Uploads shared to a channel: id, name, title, channels, thread_ts, content (bytes)."""
        with self._lock:
            found = self._workspace.find_channel(channel)
            return copy.deepcopy(self._workspace.shared_files(found.id)) if found else []

    # -- request handling ------------------------------------------------------------------------

    def _serve(self, path: str, query: str, headers: dict[str, str], body: bytes) -> Answer | None:
        """Answer one HTTP request; None means 404 (an address Slack would not hand out)."""
        kind, _, name = path.strip("/").partition("/")
        if not name or kind not in ("api", "upload", "response"):
            return None
        method = {"upload": "upload_url", "response": "response_url"}.get(kind, name)
        try:
            if kind == "upload":
                params: Params = {"file_id": name, "size": len(body)}
            else:
                params = parse_params(headers.get("content-type", "application/json"), body, query)
        except ValueError:
            params, answer = {}, Answer(200, {"ok": False, "error": "invalid_json"}, {})
        else:
            if kind == "api" and self.call_delay_seconds > 0:
                time.sleep(self.call_delay_seconds)  # on the request's own server thread
            injected = self._take_injected(method)
            if injected is None or injected[1]:  # not injected, or applied before the answer
                real = self._answer(kind, name, params, headers, body)
            answer = injected[0] if injected is not None else real
        self._record(SlackCall(method, params, answer.status, answer.response, path))
        return answer

    def _answer(
        self, kind: str, name: str, params: Params, headers: dict[str, str], body: bytes
    ) -> Answer:
        if kind == "response":
            # Slack checks a response_url's blocks like a post's: 400 "invalid_blocks" if bad
            if "blocks" in params and (errors := block_errors(params["blocks"])):
                return Answer(400, invalid("invalid_blocks", errors), {}, text="invalid_blocks")
            return Answer(200, {"ok": True}, {}, text="ok")
        if kind == "upload":
            with self._lock:
                upload = self._workspace.files.get(name)
                if upload is None:
                    return Answer(404, {"ok": False, "error": "file_not_found"}, {}, text="")
                upload["content"] = body
            return Answer(200, {"ok": True}, {}, text=f"OK - {len(body)}")
        token = headers.get("authorization", "").removeprefix("Bearer ") or params.get("token")
        if not token:
            return Answer(200, {"ok": False, "error": "not_authed"}, {})
        if token != self.bot_token:
            return Answer(200, {"ok": False, "error": "invalid_auth"}, {})
        if not is_supported(name):
            return Answer(200, {"ok": False, "error": "unknown_method"}, {})
        try:
            with self._lock:
                response = copy.deepcopy(call(self._workspace, name, copy.deepcopy(params)))
        except Exception:
            # A simulator bug (or an argument it cannot parse) shows up as a recorded 500.
            log.exception("SlackSimulator failed on %s %r", name, params)
            return Answer(500, {"ok": False, "error": "internal_error"}, {})
        if name == "files.getUploadURLExternal" and response["ok"]:
            # Only the server knows its own address, so the upload URL is added here.
            response["upload_url"] = f"{self.url}/upload/{response['file_id']}"
        return Answer(200, response, {})
