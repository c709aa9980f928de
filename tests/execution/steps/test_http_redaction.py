"""HTTP steps never put a URL's credentials or a raw response body into Slack: the URL is
shown without userinfo and query values, the body excerpt is escaped for mrkdwn."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bot.execution.steps.base import StepFailed
from bot.execution.steps.http import http_check, http_request, redact_url
from tests.conftest import Harness, catalog_yaml

HOSTILE_BODY = "<!channel> deploy failed, see <https://evil.example|the logs> & retry\n" + "x" * 500


class DeployApi:
    """A deployment API that refuses every call with a 502 and a hostile body."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []  # (path with query, Authorization header)
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _refuse(self) -> None:
                api.requests.append((self.path, self.headers.get("Authorization", "")))
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = HOSTILE_BODY.encode()
                self.send_response(502)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _refuse

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://deployer:hunter2@127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def deploy_api() -> Iterator[DeployApi]:
    api = DeployApi()
    yield api
    api.close()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://api.example.com/rollback", "https://api.example.com/rollback"),
        ("https://u:p@api.example.com:8443/rollback", "https://***@api.example.com:8443/rollback"),
        ("https://tok@api.example.com/", "https://***@api.example.com/"),
        ("https://h.example/r?token=abc&dry_run=1", "https://h.example/r?token=***&dry_run=***"),
        ("https://h.example/r?s3cr3t", "https://h.example/r?***"),
        ("https://h.example/r#access_token=abc", "https://h.example/r#***"),
        ("http://[::1]:8080/r?key=a@b", "http://[::1]:8080/r?key=***"),
        ("http://[::1/r", "(an unparsable URL)"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_refused_request_names_the_url_without_credentials_and_shortens_the_body(
    make_ctx: Any, deploy_api: DeployApi
) -> None:
    ctx, _ = make_ctx()
    with pytest.raises(StepFailed) as failed:
        http_request(ctx, {"url": deploy_api.url("/rollback?token=s3cr3t&env=prod")})

    text = str(failed.value)
    port = deploy_api.server.server_address[1]
    assert text.startswith(
        f"POST http://***@127.0.0.1:{port}/rollback?token=***&env=*** answered HTTP 502: "
        "<!channel> deploy failed, see <https://evil.example|the logs> & retry x"
    )  # plain text: whatever shows it in Slack escapes it (the full run below checks that)
    assert "hunter2" not in text and "s3cr3t" not in text and "deployer" not in text
    assert "\n" not in text
    assert text.count("x") <= 200  # an excerpt, not the whole body
    (path, auth) = deploy_api.requests[0]  # the request itself still carried them
    assert path == "/rollback?token=s3cr3t&env=prod"
    assert auth == "Basic " + base64.b64encode(b"deployer:hunter2").decode()


def test_unreachable_and_resumed_requests_and_health_checks_hide_credentials(
    make_ctx: Any, deploy_api: DeployApi
) -> None:
    port = deploy_api.server.server_address[1]
    url = deploy_api.url("/status?token=s3cr3t")
    resumed, rec = make_ctx(previous={"sent": True})
    detail = http_request(resumed, {"url": url})
    assert detail["url"] == f"http://***@127.0.0.1:{port}/status?token=***"
    assert "hunter2" not in rec.notes[0] and "s3cr3t" not in rec.notes[0]

    ctx, _ = make_ctx(timeout_seconds=1)
    with pytest.raises(StepFailed) as failed:
        http_check(ctx, {"url": url})
    assert str(failed.value).startswith(f"health check http://***@127.0.0.1:{port}/status?token=")
    assert "hunter2" not in str(failed.value) and "s3cr3t" not in str(failed.value)

    ctx, _ = make_ctx()
    with pytest.raises(StepFailed) as unreachable:
        http_request(ctx, {"url": "http://deployer:hunter2@127.0.0.1:1/rollback?token=s3cr3t"})
    assert str(unreachable.value) == (
        "POST http://***@127.0.0.1:1/rollback?token=***: unreachable (ConnectError)"
    )


def test_a_failing_deploy_api_call_pings_nobody_and_leaks_nothing_in_slack(
    make_harness: Any, deploy_api: DeployApi
) -> None:
    service = (
        "  billing:\n    deployment: billing-api\n    responders: [U0ONCALL1]\n"
        "    phases:\n      application:\n"
        f"        - {{kind: http_request, url: '{deploy_api.url('/rollback?token=s3cr3t')}',"
        " name: Call deploy API}\n"
    )
    h: Harness = make_harness(catalog_yaml(service), prometheus_url=None)
    assert "started" in h.slash("run billing --immediate 5xx", user_id="U0ONCALL1").text
    h.wait_rollbacks()
    h.wait_idle()

    rollback = h.bot.deps.repo.get_rollback(1)
    assert rollback is not None and rollback.status == "failed"
    (note,) = [
        str(c.params["text"])
        for c in h.slack.calls_to("chat.postMessage")
        if str(c.params["text"]).startswith(":x: *Call deploy API* failed")
    ]  # the thread note, posted as the step failed
    assert "answered HTTP 502: &lt;!channel&gt; deploy failed" in note
    sent = [json.dumps(c.params) for c in h.slack.calls if c.method.startswith("chat.")]
    everything = "\n".join(sent)
    assert "<!channel>" not in everything and "<https://evil" not in everything
    assert "hunter2" not in everything and "s3cr3t" not in everything
