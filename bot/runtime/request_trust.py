"""What the bot trusts from an HTTP request: Slack's signature, and where answers may go.

``is_signed_by_slack`` is Slack's signing check (``v0:{ts}:{body}`` HMAC-SHA256 within five
minutes) written so that it never raises: slack_sdk's ``SignatureVerifier`` raises ``ValueError``
on a timestamp that is not an integer, and Bolt hands that error, with the unverified body, to
the app's error handler. Whatever is malformed here is simply "not signed".

``is_response_url_trusted`` decides whether ``respond()`` may POST to a payload's
``response_url``: only Slack's hooks hosts over HTTPS, or the host of the configured
``SLACK_API_URL`` (the simulator in tests and ``rollback-bot console``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

from slack_bolt import BoltContext, BoltResponse
from slack_bolt.context.respond import Respond
from slack_sdk.webhook import WebhookResponse

log = logging.getLogger(__name__)

SIGNATURE_WINDOW_SECONDS = 5 * 60  # Slack's (and Bolt's) replay window
SLACK_HOOK_HOSTS = frozenset({"hooks.slack.com", "hooks.slack-gov.com"})
_MAX_TIMESTAMP_DIGITS = 12  # far beyond any real epoch second; keeps int() cheap


def is_signed_by_slack(
    secret: str,
    body: bytes | str,
    timestamp: str | None,
    signature: str | None,
    now: float | None,
) -> bool:
    """True only for a well-formed, correctly signed request, fresh at ``now`` (not checked when
    ``now`` is None). Never raises."""
    if not timestamp or not signature:
        return False
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > _MAX_TIMESTAMP_DIGITS:
        return False
    if now is not None and abs(now - int(timestamp)) > SIGNATURE_WINDOW_SECONDS:
        return False
    raw = body.encode() if isinstance(body, str) else body
    digest = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + raw, hashlib.sha256)
    expected = f"v0={digest.hexdigest()}".encode()
    # compare_digest refuses non-ASCII str, so compare bytes.
    return hmac.compare_digest(expected, signature.encode("utf-8", "replace"))


def is_bolt_request_signed(
    secret: str, mode: str, raw_body: str, headers: Mapping[str, Sequence[str]]
) -> bool:
    """For the error handler: is this request Slack's? Socket Mode envelopes come over the
    app-token WebSocket (Slack authenticated them); HTTP ones must carry Slack's signature.
    Freshness is not checked again: it was when the request came in, and a listener may fail
    minutes later (a stale replay never gets past the check at the door to fail anywhere)."""
    if mode == "socket_mode":
        return True
    timestamp = next(iter(headers.get("x-slack-request-timestamp") or ()), None)
    signature = next(iter(headers.get("x-slack-signature") or ()), None)
    return is_signed_by_slack(secret, raw_body, timestamp, signature, None)


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
    except ValueError:  # an unparsable host or port
        return None
    if not host or parts.username is not None or parts.password is not None:
        return None
    if scheme not in ("http", "https"):
        return None
    return scheme, host.lower(), port or (443 if scheme == "https" else 80)


def is_response_url_trusted(url: str, slack_api_url: str) -> bool:
    """A Slack hooks URL (HTTPS, default port), or one on the configured Slack API's origin."""
    origin = _origin(url)
    if origin is None:
        return False
    if origin[0] == "https" and origin[1] in SLACK_HOOK_HOSTS and origin[2] == 443:
        return True
    configured = _origin(slack_api_url)
    return configured is not None and origin == configured and origin[1] != "slack.com"


def where(url: str) -> str:
    """The origin of a URL for a log line (never its path: it carries a one-time token)."""
    origin = _origin(url)
    return f"{origin[0]}://{origin[1]}:{origin[2]}" if origin else "an unparsable URL"


class CheckedRespond(Respond):
    """``respond()`` that POSTs only to a trusted ``response_url``; otherwise it logs a warning
    and posts nothing (the answer it gives back says so, with status 403)."""

    def __init__(self, response_url: str, slack_api_url: str, **kwargs: Any) -> None:
        super().__init__(response_url=response_url, **kwargs)
        self.is_trusted = is_response_url_trusted(response_url, slack_api_url)

    def __call__(self, *args: Any, **kwargs: Any) -> WebhookResponse:
        if self.is_trusted:
            return super().__call__(*args, **kwargs)
        url = self.response_url or ""
        log.warning(
            "not posting to the response_url at %s: it is not a Slack hooks URL", where(url)
        )
        return WebhookResponse(
            url=url, status_code=403, body="response_url refused: not a Slack URL", headers={}
        )


Middleware = Callable[[BoltContext, Callable[[], BoltResponse]], BoltResponse]


def respond_only_to_slack(slack_api_url: str) -> Middleware:
    """A Bolt global middleware: every listener's ``respond`` is a ``CheckedRespond``."""

    def check_response_url(context: BoltContext, next: Callable[[], BoltResponse]) -> BoltResponse:
        url = context.response_url
        if isinstance(url, str) and url:
            context["respond"] = CheckedRespond(
                url, slack_api_url, proxy=context.client.proxy, ssl=context.client.ssl
            )
        return next()

    return check_response_url


_NEEDS: dict[str, tuple[str, ...]] = {  # what Bolt reads of each payload type without checking
    "block_actions": ("user", "actions"),
    "view_submission": ("user", "view"),
    "view_closed": ("user", "view"),
    "block_suggestion": ("user",),
    "shortcut": ("user",),
    "message_action": ("user",),
}


def malformed(body: bytes, content_type: str) -> str | None:
    """Why a (signed) Slack request cannot be a Slack payload, or None. Bolt indexes into
    payloads without checking (an empty ``actions`` list is an IndexError, a 500), so the shape
    is checked before Bolt sees it. Never raises."""
    media, _, params = content_type.partition(";")
    charset = params.partition("charset=")[2].strip().strip('"').lower()
    if charset and charset not in ("utf-8", "utf8"):
        return f"unsupported charset {charset[:20]}"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "the body is not UTF-8"
    if media.strip().lower() == "application/json":
        return _json_object(text, "the JSON body")[1]
    payload = parse_qs(text).get("payload")
    if not payload:
        return None  # a slash command (Bolt reads its form fields with .get)
    found, why = _json_object(payload[0], "payload")
    if why is not None or found is None:
        return why
    kind = found.get("type")
    if not isinstance(kind, str):
        return "payload has no type"
    for key in _NEEDS.get(kind, ()):
        if not isinstance(found.get(key), dict if key != "actions" else list):
            return f"{kind} payload without {key}"
    if kind == "block_actions" and not all(
        isinstance(a, dict) and isinstance(a.get("action_id"), str) for a in found["actions"] or [0]
    ):
        return "block_actions payload without actions"
    if "user" in _NEEDS.get(kind, ()) and not isinstance(found["user"].get("id"), str):
        return f"{kind} payload without a user id"
    if "view" in _NEEDS.get(kind, ()) and not all(
        isinstance(found["view"].get(key), str) for key in ("type", "callback_id")
    ):
        return f"{kind} payload without a view type and callback_id"
    return None


def _json_object(text: str, what: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        value = json.loads(text)
    except ValueError:
        return None, f"{what} is not JSON"
    if not isinstance(value, dict):
        return None, f"{what} is not a JSON object"
    return value, None
