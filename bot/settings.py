"""Environment → Settings; the only module that reads os.environ (README, "Configuration").

A value that cannot work stops the process with one line per variable, naming it and what is
allowed (``rollback-bot: PORT='abc' is not allowed: a whole number from 0 to 65535``), never a
traceback.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_HTTP_URL = re.compile(r"^https?://[^/\s:?#]+(:\d{1,5})?([/?#]\S*)?$")
_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_SENDER = re.compile(r"^(\+[1-9]\d{6,14}|\d{5,6})$")  # E.164, or a short code
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")  # a Prometheus label name

# What each variable allows, as the error line says it.
ALLOWED: dict[str, str] = {
    "slack_bot_token": "a Slack bot token (xoxb-…)",
    "slack_signing_secret": "the app's signing secret (Basic Information → App Credentials)",
    "slack_app_token": "a Slack app-level token (xapp-…)",
    "slack_api_url": "an http(s):// URL",
    "database_url": "a sqlite:///FILE or postgresql://USER@HOST/DB URL",
    "rollback_config": "a path to the catalog file",
    "prometheus_url": "an http(s):// URL",
    "kubeconfig": "a path to an existing kubeconfig file (or several, joined with ':')",
    "twilio_account_sid": "a Twilio Account SID (AC and 32 hex digits)",
    "twilio_auth_token": "the Twilio auth token",
    "twilio_from_number": "a phone number in E.164 form (+15550100001) or a short code",
    "twilio_api_url": "an http(s):// URL",
    "public_url": "an http(s):// URL",
    "alertmanager_token": "a bearer token, without spaces",
    "alertmanager_service_label": "a Prometheus label name (letters, digits, _; not a digit first)",
    "port": "a whole number from 0 to 65535",
    "rollback_bot_http_threads": "a whole number, 1 or more",
    "rollback_bot_workers": "a whole number, 1 or more",
    "rollback_bot_query_timeout_seconds": "a number of seconds above 0",
    "rollback_bot_log_level": "one of " + ", ".join(LOG_LEVELS) + " (any case)",
    "rollback_bot_lease_seconds": "a number of seconds above 0",
    "rollback_bot_tick_seconds": "a number of seconds above 0",
}


class ConfigurationError(Exception):
    """The process cannot start as configured; the message says what to set."""


class Settings(BaseSettings):
    """Process configuration: secrets and endpoints come from the environment (12-factor)."""

    # env_ignore_empty: `PROMETHEUS_URL=` means unset, as in most shells' idiom
    model_config = SettingsConfigDict(
        env_prefix="", case_sensitive=False, extra="ignore", env_ignore_empty=True
    )

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"

    database_url: str = "sqlite:///rollback-bot.db"
    rollback_config: str = "rollback.yaml"
    prometheus_url: str | None = None
    kubeconfig: str | None = None

    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from_number: str | None = None
    twilio_api_url: str = "https://api.twilio.com"

    public_url: str | None = None
    # POST /alertmanager answers 404 "not configured" until a token is set (no open webhook).
    alertmanager_token: SecretStr | None = None
    alertmanager_service_label: str = "service"  # the alert label naming the catalog service
    port: int = Field(default=3000, ge=0, le=65535)

    # Tuning knobs beyond the contract (all optional).
    rollback_bot_http_threads: int = Field(default=32, ge=1)
    rollback_bot_workers: int = Field(default=4, ge=1)
    rollback_bot_query_timeout_seconds: float = Field(default=5.0, gt=0, allow_inf_nan=False)
    rollback_bot_log_level: str = "INFO"
    # A crashed process's rollbacks are taken over when their lease lapses (checked every half).
    rollback_bot_lease_seconds: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    # How often due work (windows, escalations, channel updates, reminders) is looked for.
    rollback_bot_tick_seconds: float = Field(default=2.0, gt=0, allow_inf_nan=False)

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token(cls, value: SecretStr | None) -> SecretStr | None:
        # xoxe.xoxb-: a bot token under token rotation
        if value is not None and not value.get_secret_value().startswith(("xoxb-", "xoxe.xoxb-")):
            raise ValueError("not a bot token")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("not an app token")
        return value

    @field_validator("slack_signing_secret", "twilio_auth_token", "alertmanager_token")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and re.search(r"^$|\s", value.get_secret_value()):
            raise ValueError("blank or has spaces")
        return value

    @field_validator("slack_api_url", "prometheus_url", "twilio_api_url", "public_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not _HTTP_URL.match(value):
            raise ValueError("not an http(s) URL")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        from storage.db import check_database_url  # why: SQLAlchemy (0.2 s) not for --help

        check_database_url(value)
        return value

    @field_validator("kubeconfig")
    @classmethod
    def _kubeconfig(cls, value: str | None) -> str | None:
        if value is not None:
            paths = [Path(p).expanduser() for p in value.split(os.pathsep) if p]
            if not any(p.is_file() for p in paths):
                raise ValueError("no such file")
        return value

    @field_validator("twilio_account_sid")
    @classmethod
    def _account_sid(cls, value: str | None) -> str | None:
        if value is not None and not _ACCOUNT_SID.match(value):
            raise ValueError("not an Account SID")
        return value

    @field_validator("twilio_from_number")
    @classmethod
    def _from_number(cls, value: str | None) -> str | None:
        if value is not None and not _SENDER.match(value):
            raise ValueError("not a phone number")
        return value

    @field_validator("alertmanager_service_label")
    @classmethod
    def _label_name(cls, value: str) -> str:
        if not _LABEL_NAME.match(value):
            raise ValueError("not a label name")
        return value

    @field_validator("rollback_bot_log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError("not a log level")
        return value.upper()

    def named_secret(self, name: str) -> SecretStr | None:
        """A secret the catalog names by its variable (``status_page.token_env``), read from
        the environment when asked, so that it can be rotated without a new catalog. None when
        unset, empty or holding spaces (a header value could not carry it)."""
        value = os.environ.get(name, "")
        return SecretStr(value) if value and not re.search(r"\s", value) else None

    @property
    def is_sms_enabled(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token and self.twilio_from_number)


_SECRETS = {
    "slack_bot_token",
    "slack_signing_secret",
    "slack_app_token",
    "twilio_auth_token",
    "alertmanager_token",
}


def explain(error: ValidationError) -> list[str]:
    """One line per variable: its name, the value (unless secret), and what is allowed."""
    lines: dict[str, str] = {}
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else ""
        value: Any = item.get("input")
        shown = "" if field in _SECRETS or isinstance(value, dict) else f"={value!r}"
        allowed = ALLOWED.get(field, item["msg"])
        lines.setdefault(field, f"{field.upper()}{shown} is not allowed: {allowed}")
    return list(lines.values())


def load_settings() -> Settings:
    """Settings from the environment; :class:`ConfigurationError` lists every bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigurationError("\n".join(explain(exc))) from None
