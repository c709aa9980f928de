"""``/rollback``: the verb table, and what ``answer`` says at once for each kind of text."""

from __future__ import annotations

import pytest

from bot.approvals import submit
from bot.execution import immediate
from bot.rollback import command
from handlers.commands import VERBS, answer
from tests.conftest import Harness
from tests.handlers.conftest import asker

USAGE_LINE = "/rollback assess <service>"


def test_every_verb_of_the_grammar_has_an_answer() -> None:
    assert set(VERBS) == set(command.VERBS)


def test_votes_and_abort_are_the_workflows_themselves() -> None:
    assert VERBS["approve"] is submit.vote
    assert VERBS["reject"] is submit.vote
    assert VERBS["abort"] is immediate.abort


@pytest.mark.parametrize("text", ["help", "", "   ", "HELP"])
def test_help_and_nothing_answer_the_whole_grammar(h: Harness, text: str) -> None:
    a, said = asker()
    reply = answer(h.bot.deps, text, a)
    assert reply.text == command.USAGE
    assert reply.blocks and USAGE_LINE in str(reply.blocks)
    assert reply.then is None and said.calls == []


def test_a_typo_asks_did_you_mean_instead_of_the_grammar(h: Harness) -> None:
    reply = answer(h.bot.deps, "asess checkout", asker()[0])
    assert reply.text == (
        ":x: unknown subcommand `asess`: did you mean `assess`?"
        " (`/rollback help` lists every command.)"
    )
    assert USAGE_LINE not in reply.text


def test_an_unknown_word_gets_the_grammar(h: Harness) -> None:
    reply = answer(h.bot.deps, "frobnicate", asker()[0])
    assert reply.text.startswith("unknown subcommand `frobnicate`.\n\n")
    assert USAGE_LINE in reply.text


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("run", "`/rollback run` needs a service name."),
        ("assess", "`/rollback assess` needs a service name."),
        ("approve x", "`x` is not a rollback id (a number, like 42)."),
        ("abort", "`/rollback abort` needs a rollback id."),
    ],
)
def test_a_malformed_command_gets_what_was_wrong_and_the_usage(
    h: Harness, text: str, problem: str
) -> None:
    reply = answer(h.bot.deps, text, asker()[0])
    assert reply.text.startswith(problem)
    assert USAGE_LINE in reply.text


@pytest.mark.parametrize(
    "text", ["assess nope", "run nope --immediate x", "plan nope x", "history nope"]
)
def test_an_unknown_service_lists_the_known_ones(h: Harness, text: str) -> None:
    reply = answer(h.bot.deps, text, asker()[0])
    assert reply.text == "Unknown service `nope`. Known services: `checkout`, `search`."
    assert reply.then is None


def test_a_near_miss_service_is_suggested(h: Harness) -> None:
    reply = answer(h.bot.deps, "assess chekout", asker()[0])
    assert "Did you mean `checkout`?" in reply.text


def test_a_hostile_service_name_is_escaped(h: Harness) -> None:
    reply = answer(h.bot.deps, "assess <!channel>", asker()[0])
    assert "<!channel>" not in reply.text and "&lt;!channel&gt;" in reply.text


# Each verb reaches its own workflow: a sentence only that workflow says (no cluster here, so
# the workflows that would read it refuse, each in its own words).
@pytest.mark.parametrize(
    ("text", "starts"),
    [
        (
            "run checkout --immediate bad release",
            ":no_entry: No rollback of *checkout* was started",
        ),
        ("plan checkout bad release", ":no_entry: No rollback request for *checkout* was made"),
        ("approve 7", ":x: There is no rollback request #7."),
        ("reject 7 not now", ":x: There is no rollback request #7."),
        ("abort 7", ":x: There is no rollback #7."),
        ("status", "No rollback is running."),
        ("status 7", ":x: There is no rollback #7."),
        ("history", "No rollbacks yet."),
        ("history checkout", "No rollbacks of *checkout* yet."),
        ("review 7", ":x: There is no rollback #7."),
    ],
)
def test_each_verb_dispatches_to_its_workflow(h: Harness, text: str, starts: str) -> None:
    a, said = asker()  # a responder of checkout
    reply = answer(h.bot.deps, text, a)
    assert reply.text.startswith(starts), reply.text
    assert reply.then is None and said.calls == []


def test_assess_answers_at_once_and_leaves_the_work_for_after_the_ack(h: Harness) -> None:
    a, _ = asker()
    reply = answer(h.bot.deps, "assess checkout", a)
    assert reply.text == ":hourglass_flowing_sand: Assessing *checkout*…"
    assert reply.then is not None
    assert h.slack.calls_to("chat.postMessage") == []  # nothing posted before the ack


def test_a_dry_run_is_told_after_the_ack_through_respond(h: Harness) -> None:
    a, said = asker()
    reply = answer(h.bot.deps, "run checkout --dry-run bad release", a)
    assert reply.text.startswith(":mag: Dry run of a rollback of *checkout*")
    assert reply.then is not None and said.calls == []
    reply.then()
    h.wait_idle()
    assert len(said.calls) == 1
    assert said.texts[0].startswith("*Dry run: rollback of checkout*")
    assert "nothing was changed" in said.texts[0]
    assert h.bot.deps.repo.list_rollbacks() == []


# --- through the real Bolt app, signed like Slack -------------------------------------------


def test_the_slash_command_acks_with_the_answer_privately(h: Harness) -> None:
    resp = h.slash("help")
    assert resp.status_code == 200
    body = resp.json()
    assert body["response_type"] == "ephemeral"
    assert body["text"] == command.USAGE
    assert USAGE_LINE in str(body["blocks"])


def test_the_slash_command_answers_a_typo_in_its_ack(h: Harness) -> None:
    body = h.slash("stauts").json()
    assert "did you mean `status`?" in body["text"]


def test_assess_through_the_app_posts_after_the_ack(h: Harness) -> None:
    body = h.slash("assess checkout").json()
    assert body["text"] == ":hourglass_flowing_sand: Assessing *checkout*…"
    posted = h.slack.wait_for("chat.postMessage", lambda c: "checkout" in c.params["text"])
    assert posted.params["channel"] == "C0DEPLOYS"
    h.wait_idle()
