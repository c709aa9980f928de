"""Redaction: Slack tokens and phone numbers never reach a log line."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bot.runtime.logs import RedactingFilter, mask_account_sid, mask_phone, redact, setup_logging

# every logger whose level setup_logging sets (root included)
CONFIGURED_LOGGERS = ("", "httpx", "alembic", "waitress.queue", "apscheduler", "twilio")

PHONES = [
    pytest.param("+15550100001", "+1555•••0001", id="US number"),
    pytest.param("+442071838750", "+4420•••8750", id="UK number"),
    pytest.param("+123456789012345", "+1234•••2345", id="15 digits (E.164 maximum)"),
    pytest.param(
        "paging +15550100001 then +15550100002.",
        "paging +1555•••0001 then +1555•••0002.",
        id="two numbers in a sentence",
    ),
    pytest.param("to=%2B15550100001", "to=%2B15550100001", id="URL-encoded plus is not a phone"),
    pytest.param("rollback #15550100001", "rollback #15550100001", id="no plus, no phone"),
    pytest.param("+1-555", "+1-555", id="too short"),
]


@pytest.mark.parametrize(("text", "masked"), PHONES)
def test_mask_phone(text: str, masked: str) -> None:
    assert mask_phone(text) == masked


@pytest.mark.parametrize("number", ["+3545551234", "+68340021"])
def test_mask_short_e164_numbers(number: str) -> None:
    masked = mask_phone(f"paging {number}")
    assert number not in masked
    assert "•••" in masked


TOKENS = [
    pytest.param("xoxb-1234-5678-AbCdEf", "xoxb-•••", id="bot token"),
    pytest.param("xoxp-1-2-3-abc", "xoxp-•••", id="user token"),
    pytest.param("xapp-1-A0B1C2-123-abcdef", "xapp-•••", id="app token"),
    pytest.param(
        "Authorization: Bearer xoxb-99-88-secret, retry",
        "Authorization: Bearer xoxb-•••, retry",
        id="token in a header line",
    ),
    pytest.param(
        "token=xoxb-1-2-abc&channel=C0DEPLOYS",
        "token=xoxb-•••&channel=C0DEPLOYS",
        id="token in a query string",
    ),
    pytest.param(
        "token xoxb-1-2-abc for +15550100001",
        "token xoxb-••• for +1555•••0001",
        id="token and phone",
    ),
    pytest.param("no secrets here: xoxo", "no secrets here: xoxo", id="nothing to redact"),
]


@pytest.mark.parametrize(("text", "redacted"), TOKENS)
def test_redact(text: str, redacted: str) -> None:
    assert redact(text) == redacted


# --- the filter on real records ------------------------------------------------------------------


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing through a RedactingFilter'd handler into a string."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("tests.test_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)
    logger.propagate = True


def test_filter_redacts_formatted_arguments(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = logged
    logger.warning("posting with %s to %s", "xoxb-111-222-secret", "+15550100001")
    assert stream.getvalue() == "WARNING posting with xoxb-••• to +1555•••0001\n"


def test_filter_redacts_the_message_itself(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = logged
    logger.info("SLACK_BOT_TOKEN=xoxb-111-222-secret")
    assert stream.getvalue() == "INFO SLACK_BOT_TOKEN=xoxb-•••\n"


def test_filter_on_a_record() -> None:
    record = logging.LogRecord(
        "bot", logging.INFO, __file__, 1, "sms to %s: %d%%", ("+15550100001", 50), None
    )
    assert RedactingFilter().filter(record) is True
    assert record.getMessage() == "sms to +1555•••0001: 50%"
    assert record.args is None


def test_filter_leaves_clean_records_alone() -> None:
    args = ("checkout", 3)
    record = logging.LogRecord("bot", logging.INFO, __file__, 1, "%s: %d pods", args, None)
    assert RedactingFilter().filter(record) is True
    assert record.msg == "%s: %d pods"
    assert record.args is args


def test_filter_redacts_exception_text(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = logged
    try:
        raise RuntimeError("invalid_auth for xoxb-111-222-secret")
    except RuntimeError:
        logger.exception("Slack call failed")
    assert "secret" not in stream.getvalue()


def test_a_bad_log_call_is_left_to_the_handler() -> None:
    # logging reports a malformed call through Handler.handleError; the filter must not raise first
    record = logging.LogRecord("bot", logging.ERROR, __file__, 1, "%s needs %s", ("one",), None)
    assert RedactingFilter().filter(record) is True
    assert record.msg == "%s needs %s"


# --- setup_logging -------------------------------------------------------------------------------


@pytest.fixture
def root_logging() -> Iterator[None]:
    """``setup_logging`` reconfigures process-wide loggers; put them back for the other tests."""
    root = logging.getLogger()
    handlers = root.handlers[:]
    levels = {name: logging.getLogger(name).level for name in CONFIGURED_LOGGERS}
    yield
    root.handlers[:] = handlers
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("root_logging")
@pytest.mark.parametrize(
    ("level", "root_level", "httpx_level"),
    [
        pytest.param("debug", logging.DEBUG, logging.WARNING, id="debug: httpx kept at WARNING"),
        pytest.param("INFO", logging.INFO, logging.WARNING, id="INFO"),
        pytest.param("ERROR", logging.ERROR, logging.ERROR, id="ERROR: httpx follows the root"),
    ],
)
def test_setup_logging_levels(level: str, root_level: int, httpx_level: int) -> None:
    setup_logging(level)
    assert logging.getLogger().level == root_level
    assert logging.getLogger("httpx").level == httpx_level


@pytest.mark.usefixtures("root_logging")
def test_setup_logging_installs_one_redacting_handler(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("INFO")
    (handler,) = logging.getLogger().handlers
    assert any(isinstance(f, RedactingFilter) for f in handler.filters)
    logging.getLogger("bot.test").info("paging %s", "+15550100001")
    err = capsys.readouterr().err
    assert err.endswith(" INFO bot.test: paging +1555•••0001\n")


# --- what the log holds at INFO (issue 12, item 1) -----------------------------------------------


def test_account_sid_is_masked() -> None:
    sid = "AC" + "0123456789abcdef" * 2
    line = f"POST Request: https://api.twilio.com/2010-04-01/Accounts/{sid}/Messages.json"
    assert mask_account_sid(line) == (
        "POST Request: https://api.twilio.com/2010-04-01/Accounts/AC•••cdef/Messages.json"
    )
    assert sid not in redact(line)
    assert redact("ACCEPTED by ACME") == "ACCEPTED by ACME"  # not a SID


@pytest.mark.usefixtures("root_logging")
def test_apscheduler_runs_are_not_logged_at_info(capsys: pytest.CaptureFixture[str]) -> None:
    """Every run of a job was two INFO lines (every 2 s of due work: ~86,000 lines a day)."""
    import threading

    from apscheduler.schedulers.background import BackgroundScheduler

    setup_logging("INFO")
    runs = threading.Semaphore(0)
    scheduler = BackgroundScheduler()
    scheduler.add_job(runs.release, "interval", seconds=0.01, id="tick")
    scheduler.start()
    try:
        for _ in range(3):
            assert runs.acquire(timeout=10)
    finally:
        scheduler.shutdown(wait=True)
    assert "apscheduler" not in capsys.readouterr().err


@pytest.mark.usefixtures("root_logging")
def test_apscheduler_is_shown_when_debugging() -> None:
    setup_logging("DEBUG")
    assert logging.getLogger("apscheduler.executors.default").isEnabledFor(logging.DEBUG)
    setup_logging("INFO")
    assert not logging.getLogger("apscheduler.executors.default").isEnabledFor(logging.INFO)
    assert logging.getLogger("apscheduler").isEnabledFor(logging.WARNING)


@pytest.mark.usefixtures("root_logging")
@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_twilio_account_sid_never_in_the_log(
    level: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The official client logs each request's URL (with the Account SID) at INFO."""
    from bot.adapters.twilio import TwilioSMS
    from bot.sim.twilio_api import TwilioSimulator

    setup_logging(level)
    with TwilioSimulator(is_sending_callbacks=False) as twilio:
        sms = TwilioSMS(twilio.account_sid, twilio.auth_token, "+15550009999", twilio.url)
        try:
            sms.send_sms("+15550100001", "rollback #1 of checkout")
        finally:
            sms.close()
        err = capsys.readouterr().err
        assert twilio.account_sid not in err
        assert "+15550100001" not in err
        assert "handed to Twilio for +1555•••0001" in err
        if level == "INFO":
            assert "twilio.http_client" not in err  # eight lines per call: debugging only
        else:
            assert f"Accounts/AC•••{twilio.account_sid[-4:]}/Messages.json" in err


@pytest.mark.usefixtures("root_logging")
def test_bolt_never_logs_the_body_of_an_unverified_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Bolt's RequestVerification logs the whole refused body at INFO (a stale genuine request's
    live response_url among it); the real middleware runs here."""
    from slack_bolt import App, BoltRequest

    setup_logging("INFO")
    app = App(token="xoxb-unused", signing_secret="s3cret", token_verification_enabled=False)
    body = "token=legacy&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT0%2F1%2Fsecret"
    headers = {"x-slack-request-timestamp": ["1"], "x-slack-signature": ["v0=00"]}
    response = app.dispatch(BoltRequest(body=body, headers=headers))
    assert response.status == 401
    err = capsys.readouterr().err
    assert "Invalid request signature detected: request refused (401)" in err
    assert "hooks.slack.com" not in err and "legacy" not in err
