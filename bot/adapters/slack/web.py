"""The Slack Web API, for every call the bot makes: ``SlackClient`` wraps slack_sdk's WebClient
(with the retry policy below) and turns its refusals into the bot's own ``SlackError``, so that
no module outside ``bot/adapters`` imports slack_sdk."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pydantic import SecretStr
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import HttpRequest, HttpResponse, RetryState
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.web import SlackResponse

log = logging.getLogger(__name__)

# Slack answers these when the message will not go through however often we try: the channel
# (gone, archived, read-only, not joinable), the token or its scopes, or the message itself.
# Anything else (ratelimited, internal_error, fatal_error, service_unavailable, …) may pass.
PERMANENT_ERRORS = frozenset(
    {
        # the channel
        "channel_not_found",
        "is_archived",
        "not_in_channel",
        "is_private",
        "method_not_supported_for_channel_type",
        "restricted_action",
        "restricted_action_read_only_channel",
        "restricted_action_thread_only_channel",
        "restricted_action_non_threadable_channel",
        "team_access_not_granted",
        "ekm_access_denied",
        # the token and its scopes
        "missing_scope",
        "not_authed",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "not_allowed_token_type",
        "access_denied",
        "org_login_required",
        "enterprise_is_restricted",
        "two_factor_setup_required",
        # the message
        "msg_too_long",
        "no_text",
        "invalid_blocks",
        "invalid_blocks_format",
        "invalid_arguments",
        "too_many_attachments",
    }
)


# Methods that create something: a 500 may come after Slack did it, so a blind resend makes a
# second one (an orphaned progress message, a second incident channel). Their callers retry
# themselves, looking first for what the lost answer would have named. A 503 (Slack did not
# take the request) is still resent at once.
CREATING_METHODS = frozenset(
    {"chat.postMessage", "conversations.create", "files.completeUploadExternal", "canvases.create"}
)


class ServerErrorRetryUnlessCreating(ServerErrorRetryHandler):
    """slack_sdk's 5xx retry, except a 500 to a method that creates (CREATING_METHODS)."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        method = request.url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
        if method in CREATING_METHODS and response is not None and response.status_code == 500:
            return False
        return super()._can_retry(state=state, request=request, response=response, error=error)


def slack_web_client(token: SecretStr, base_url: str) -> SlackClient:
    """A WebClient that honours 429 Retry-After and retries connection errors and 5xx (not for
    methods that create: see CREATING_METHODS)."""
    return SlackClient(
        WebClient(
            token=token.get_secret_value(),
            base_url=base_url,
            timeout=10,
            retry_handlers=[
                ConnectionErrorRetryHandler(max_retry_count=2),
                RateLimitErrorRetryHandler(max_retry_count=3),
                ServerErrorRetryUnlessCreating(max_retry_count=2),
            ],
        )
    )


class SlackError(Exception):
    """Slack refused a Web API call: ``error`` is Slack's code (``channel_not_found``,
    ``ratelimited``, ``invalid_blocks``…), ``status`` the HTTP status of its answer."""

    def __init__(self, method: str, error: str, status: int) -> None:
        super().__init__(f"{method}: {error} (HTTP {status})")
        self.method, self.error, self.status = method, error, status

    @property
    def is_transient(self) -> bool:
        """Slack failed for its own reasons (429 and 5xx left over by the retry handlers)."""
        return self.status == 429 or self.status >= 500


def why(exc: BaseException) -> str:
    """A failed call in a few words for the log: Slack's error code, or the exception."""
    return exc.error if isinstance(exc, SlackError) else repr(exc)


class SlackClient:
    """Every Web API method the bot calls, with the WebClient's keyword arguments; each returns
    Slack's answer as a dict and raises ``SlackError`` when Slack refuses (timeouts and
    connection errors stay as they are: the callers that care catch ``Exception``)."""

    def __init__(self, web: WebClient) -> None:
        self.web = web  # for Bolt (App(client=…)) and Socket Mode, which take the SDK's client

    def _call(self, method: Callable[..., SlackResponse], **kwargs: Any) -> dict[str, Any]:
        try:
            response = method(**kwargs)
        except SlackApiError as exc:
            answer = exc.response
            name = getattr(method, "__name__", "slack").replace("_", ".", 1)
            error = str(answer.get("error") or "unknown_error")
            raise SlackError(name, error, answer.status_code) from exc
        return dict(response.data) if isinstance(response.data, dict) else {}

    def auth_test(self) -> dict[str, Any]:
        return self._call(self.web.auth_test)

    def chat_postMessage(self, **kwargs: Any) -> dict[str, Any]:
        return self._call(self.web.chat_postMessage, **kwargs)

    def chat_postEphemeral(self, **kwargs: Any) -> dict[str, Any]:
        return self._call(self.web.chat_postEphemeral, **kwargs)

    def chat_update(self, **kwargs: Any) -> dict[str, Any]:
        return self._call(self.web.chat_update, **kwargs)

    def conversations_create(self, **kwargs: Any) -> dict[str, Any]:
        return self._call(self.web.conversations_create, **kwargs)

    def conversations_history(self, **kwargs: Any) -> dict[str, Any]:
        return self._call(self.web.conversations_history, **kwargs)

    def conversations_replies(self, **kwargs: Any) -> dict[str, Any]:
        return self._call(self.web.conversations_replies, **kwargs)

    def conversations_list(self, **kwargs: Any) -> dict[str, Any]:
        return self._call(self.web.conversations_list, **kwargs)

    def conversations_info(self, **kwargs: Any) -> dict[str, Any]:
        return self._call(self.web.conversations_info, **kwargs)

    def conversations_join(self, **kwargs: Any) -> dict[str, Any]:
        return self._call(self.web.conversations_join, **kwargs)

    def conversations_invite(self, **kwargs: Any) -> dict[str, Any]:
        return self._call(self.web.conversations_invite, **kwargs)

    def conversations_archive(self, **kwargs: Any) -> dict[str, Any]:
        return self._call(self.web.conversations_archive, **kwargs)

    def conversations_setTopic(self, **kwargs: Any) -> dict[str, Any]:
        return self._call(self.web.conversations_setTopic, **kwargs)

    def views_open(self, **kwargs: Any) -> dict[str, Any]:
        return self._call(self.web.views_open, **kwargs)

    def views_publish(self, **kwargs: Any) -> dict[str, Any]:
        return self._call(self.web.views_publish, **kwargs)

    def users_info(self, **kwargs: Any) -> dict[str, Any]:
        return self._call(self.web.users_info, **kwargs)

    def usergroups_users_list(self, **kwargs: Any) -> dict[str, Any]:
        return self._call(self.web.usergroups_users_list, **kwargs)

    def files_upload_v2(self, **kwargs: Any) -> dict[str, Any]:
        return self._call(self.web.files_upload_v2, **kwargs)

    def files_info(self, **kwargs: Any) -> dict[str, Any]:
        return self._call(self.web.files_info, **kwargs)

    def canvases_create(self, **kwargs: Any) -> dict[str, Any]:
        return self._call(self.web.canvases_create, **kwargs)

    def canvases_access_set(self, **kwargs: Any) -> dict[str, Any]:
        return self._call(self.web.canvases_access_set, **kwargs)

    def canvases_getContent(self, **kwargs: Any) -> dict[str, Any]:
        return self._call(self.web.canvases_getContent, **kwargs)
