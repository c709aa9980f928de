"""A status page's webhook: one customer update POSTed as JSON with a bearer token.

The body (README, "Customer status updates"):
``{"incident_id", "title", "status", "message", "service", "update_id", "sent_at"}``, with
``Authorization: Bearer <token>``, ``Content-Type: application/json`` and ``Idempotency-Key:
<update_id>`` (the same for every attempt at the same text, so a receiver can drop repeats).
Any 2xx is accepted; 3xx is not followed. The token and the URL are never logged or said.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.adapters.http import HttpClient, HttpError

STATUSES = ("investigating", "identified", "monitoring", "resolved")
TIMEOUT_SECONDS = 10.0
_BODY_EXCERPT = 200  # of a refusal's body, to say why in Slack


@dataclass(frozen=True)
class StatusUpdate:
    incident_id: str  # the same for every update of one incident (one rollback)
    title: str
    status: str  # one of STATUSES
    message: str
    service: str
    update_id: str  # the idempotency key
    sent_at: datetime

    def body(self) -> dict[str, str]:
        return {
            "incident_id": self.incident_id,
            "title": self.title,
            "status": self.status,
            "message": self.message,
            "service": self.service,
            "update_id": self.update_id,
            "sent_at": self.sent_at.isoformat().replace("+00:00", "Z"),
        }


class StatusPageError(Exception):
    """The status page did not take the update. ``str()`` says why in words, without the URL
    or the token; ``is_transient``: worth another try (5xx, 429, a timeout, no connection)."""

    def __init__(self, reason: str, *, http_status: int | None, is_transient: bool) -> None:
        super().__init__(reason)
        self.http_status = http_status
        self.is_transient = is_transient


class StatusPage:
    """One configured status page (``status_page: {url, token_env}``)."""

    def __init__(
        self, http: HttpClient, url: str, token: str, timeout: float = TIMEOUT_SECONDS
    ) -> None:
        self._http, self._url, self._token, self._timeout = http, url, token, timeout

    def publish(self, update: StatusUpdate) -> int:
        """POST the update; its HTTP status when taken, else :class:`StatusPageError`."""
        if update.status not in STATUSES:
            raise ValueError(f"status {update.status!r} is not one of {', '.join(STATUSES)}")
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Idempotency-Key": update.update_id,
            "Accept": "application/json",
        }
        try:
            answer = self._http.request(
                "POST", self._url, timeout=self._timeout, json=update.body(), headers=headers
            )
        except HttpError as exc:
            why = (
                f"no answer within {self._timeout:g} s"
                if exc.is_timeout
                else f"unreachable ({exc.kind})"
            )
            raise StatusPageError(why, http_status=None, is_transient=True) from exc
        if answer.is_success:
            return answer.status
        excerpt = " ".join(answer.text.split())[:_BODY_EXCERPT]
        said = f": {excerpt}" if excerpt else ""
        raise StatusPageError(
            f"HTTP {answer.status}{said}",
            http_status=answer.status,
            is_transient=answer.status >= 500 or answer.status == 429,
        )
