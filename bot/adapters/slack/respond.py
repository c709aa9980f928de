"""Where answers may go: ``respond()`` POSTs to a payload's ``response_url`` only when it is one
of Slack's hooks hosts over HTTPS, or the host of the configured ``SLACK_API_URL`` (the
simulator in tests and ``rollback-bot console``) — never where a request body says."""

from __future__ import annotations

import logging
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from slack_bolt.context.respond import Respond
from slack_sdk.webhook import WebhookResponse

log = logging.getLogger(__name__)

SLACK_HOOK_HOSTS = frozenset({"hooks.slack.com", "hooks.slack-gov.com"})


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
        self.slack_api_url = slack_api_url

    @cached_property
    def is_trusted(self) -> bool:
        # checked when first used: most slash commands answer in the ack and never respond()
        return is_response_url_trusted(self.response_url or "", self.slack_api_url)

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
