"""Slack Web API client set-up: the retry policy every call of the bot gets."""

from __future__ import annotations

from pydantic import SecretStr
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)


def slack_web_client(token: SecretStr, base_url: str) -> WebClient:
    """A WebClient that honours 429 Retry-After and retries 5xx and connection errors."""
    return WebClient(
        token=token.get_secret_value(),
        base_url=base_url,
        timeout=10,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=3),
            ServerErrorRetryHandler(max_retry_count=2),
        ],
    )
