"""The Bolt app: Slack's requests in, listeners' answers out — and only to Slack."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.middleware import Middleware as BoltMiddleware

from bot.adapters.slack.respond import CheckedRespond
from bot.deps import Deps
from bot.settings import ConfigurationError, Settings


def bolt_app(settings: Settings, deps: Deps) -> App:
    """The Bolt app (it checks the token with ``auth.test``), answering only to Slack.
    Closes ``deps`` when the token is refused."""
    assert settings.slack_signing_secret is not None  # checked by build_app
    try:
        bolt = App(
            client=deps.slack.web,
            signing_secret=settings.slack_signing_secret.get_secret_value(),
            listener_executor=ThreadPoolExecutor(
                max_workers=settings.rollback_bot_http_threads, thread_name_prefix="listener"
            ),
        )
    except Exception as exc:  # Bolt checks the token with auth.test right here
        deps.engine.shutdown()
        for close in reversed(deps.closers):
            close()
        raise ConfigurationError(
            f"cannot verify SLACK_BOT_TOKEN with Slack at {settings.slack_api_url}:"
            f" {type(exc).__name__}: {exc}"
        ) from None
    # Answers through a payload's response_url go only to Slack (never where a body says).
    bolt.use(RespondOnlyToSlack(settings.slack_api_url))
    # Every thread that may call the Kubernetes API at once gets a kept connection: rollbacks,
    # work after acks (assessments, dry runs, plans) and due work. (slack_sdk's WebClient has no
    # pool to size: it opens a connection per call with urllib.)
    deps.kube.size_connection_pools(
        deps.engine.max_parallel + 2 * deps.work.max_workers + deps.due.parallel  # both lanes
    )
    return bolt


class RespondOnlyToSlack(BoltMiddleware):
    """A Bolt global middleware: every listener's ``respond`` is a ``CheckedRespond``. A class,
    not a function: Bolt calls a function middleware through its keyword injection, which cost
    more CPU on every ack than the check itself."""

    def __init__(self, slack_api_url: str) -> None:
        self.slack_api_url = slack_api_url

    def process(
        self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]
    ) -> BoltResponse:
        context = req.context
        url = context.response_url
        if isinstance(url, str) and url:
            context["respond"] = CheckedRespond(
                url, self.slack_api_url, proxy=context.client.proxy, ssl=context.client.ssl
            )
        return next()
