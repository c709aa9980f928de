"""Twilio webhooks: ``POST /twilio/sms`` (replies such as ``ACK 4821``) and ``POST /twilio/status``
(delivery reports). Both are refused with 403 unless ``X-Twilio-Signature`` matches; a repeated
delivery (same ``MessageSid``, or the same status twice) has one effect. A reply's ``MessageSid``
is remembered only once the reply was handled, so Twilio's retry after a failure still counts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl
from wsgiref.util import request_uri

from bot.adapters.twilio import WebhookValidator, twiml_reply
from bot.deps import Deps, Route
from bot.paging.acks import record_delivery_status, reply_to_sms
from bot.runtime.logs import mask_phone
from bot.runtime.wsgi import reply

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024


class TwilioWebhooks:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        token = deps.settings.twilio_auth_token
        self.validator = (
            WebhookValidator(token.get_secret_value(), deps.settings.public_url) if token else None
        )

    def _params(self, environ: WSGIEnvironment) -> dict[str, str] | None:
        """The form fields of a request Twilio really signed; None otherwise."""
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if self.validator is None or length > MAX_BODY:
            return None
        body = environ["wsgi.input"].read(length).decode("utf-8", "replace")
        params = dict(parse_qsl(body, keep_blank_values=True))
        url = self.validator.url_for(
            environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", ""), request_uri(environ)
        )
        signature = environ.get("HTTP_X_TWILIO_SIGNATURE", "")
        if not self.validator.is_valid(url, params, signature):
            log.warning("refused a Twilio webhook with a bad signature for %s", url)
            return None
        return params

    def sms(self, environ: WSGIEnvironment, start: StartResponse) -> Iterable[bytes]:
        params = self._params(environ)
        if params is None:
            return _forbidden(start)
        sid, phone = params.get("MessageSid", ""), params.get("From", "")
        # Handled first, remembered after: acknowledging twice has one effect, so a crash
        # between the two only means Twilio's retry is handled again, never that it is lost.
        try:
            text = reply_to_sms(self.deps, phone, params.get("Body", ""))
        except Exception:  # not remembered: a retry of this message is handled afresh
            log.exception("SMS reply from %s not handled", mask_phone(phone))
            return _xml(
                start, twiml_reply("rollback-bot hit an error; acknowledge in Slack instead.")
            )
        if sid and not self.deps.repo.record_delivery(f"twilio-sms:{sid}", self.deps.clock()):
            return _xml(start, twiml_reply(None))  # a retry of a reply we already answered
        return _xml(start, twiml_reply(text))

    def status(self, environ: WSGIEnvironment, start: StartResponse) -> Iterable[bytes]:
        params = self._params(environ)
        if params is None:
            return _forbidden(start)
        sid, status = params.get("MessageSid", ""), params.get("MessageStatus", "")
        code = params.get("ErrorCode", "")
        # the page id in the callback URL (signed with it) finds pages whose SID is not saved yet
        query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
        page = query.get("page", "")
        record_delivery_status(
            self.deps,
            sid,
            status,
            int(code) if code.isdigit() else None,
            int(page) if page.isdigit() else None,
        )
        start("204 No Content", [("Content-Length", "0")])
        return [b""]


def install(deps: Deps) -> None:
    hooks = TwilioWebhooks(deps)
    deps.routes.append(Route("POST", "/twilio/sms", hooks.sms))
    deps.routes.append(Route("POST", "/twilio/status", hooks.status))


def _forbidden(start: StartResponse) -> Iterable[bytes]:
    body = b"forbidden: the X-Twilio-Signature does not match (or TWILIO_AUTH_TOKEN is unset)\n"
    return reply(start, "403 Forbidden", "text/plain", body)


def _xml(start: StartResponse, xml: str) -> Iterable[bytes]:
    return reply(start, "200 OK", "text/xml", xml.encode())
