"""Environment → Settings; the only module that reads os.environ (CONTRACT.md, "Environment")."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigurationError(Exception):
    """The process cannot start as configured; the message says what to set."""


class Settings(BaseSettings):
    """Process configuration: secrets and endpoints come from the environment (12-factor)."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

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
    port: int = Field(default=3000, ge=0, le=65535)

    # Tuning knobs beyond the contract (all optional).
    rollback_bot_http_threads: int = Field(default=32, ge=1)
    rollback_bot_workers: int = Field(default=4, ge=1)
    rollback_bot_query_timeout_seconds: float = Field(default=5.0, gt=0)
    rollback_bot_log_level: str = "INFO"
    # A crashed process's rollbacks are taken over when their lease lapses (checked every half).
    rollback_bot_lease_seconds: float = Field(default=30.0, gt=0)
    # How often due work (windows, escalations, channel updates, reminders) is looked for.
    rollback_bot_tick_seconds: float = Field(default=2.0, gt=0)

    @property
    def is_sms_enabled(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token and self.twilio_from_number)


def load_settings() -> Settings:
    return Settings()
