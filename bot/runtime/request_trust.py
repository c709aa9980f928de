"""What the bot trusts from an HTTP request: Slack's signature, and a payload's shape.

``is_signed_by_slack`` is Slack's signing check (``v0:{ts}:{body}`` HMAC-SHA256 within five
minutes) written so that it never raises: slack_sdk's ``SignatureVerifier`` raises ``ValueError``
on a timestamp that is not an integer, and Bolt hands that error, with the unverified body, to
the app's error handler. Whatever is malformed here is simply "not signed".

``malformed`` says why a signed request cannot be a Slack payload (Bolt would fail on it).
Where answers may go is ``bot.adapters.slack.respond``'s (``CheckedRespond``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs

SIGNATURE_WINDOW_SECONDS = 5 * 60  # Slack's (and Bolt's) replay window
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
    if not (text.startswith("payload=") or "&payload=" in text):
        return None  # a slash command: no need to parse the form (it is on every ack's path)
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
