"""The `/rollback` grammar of CONTRACT.md: text in, a :class:`Command` (or a UsageError)."""

from __future__ import annotations

import difflib
import re
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo

USAGE = """\
/rollback help
/rollback assess <service> [--region <r,…>]
/rollback plan <service> [--to <revision>] [--at <HH:MM|ISO time>] [--phases <p,…>] \
[--region <r,…>] [reason…]
/rollback run <service> [--immediate] [--to <revision>] [--dry-run] [--force] \
[--phases <p,…>] [--region <r,…>] [reason…]
/rollback approve <id>      /rollback reject <id> [reason…]
/rollback status [<id>|<service>]      /rollback abort <id> [reason…]
/rollback history [<service>]          /rollback review <id>
/rollback guard <service> [on|off]
/rollback drill <service> [--rehearse] [--to <revision>] [reason…]"""

VERBS = (
    "help",
    "assess",
    "plan",
    "run",
    "approve",
    "reject",
    "status",
    "abort",
    "history",
    "review",
    "guard",
    "drill",
)
# shlex's quotes and escape; without them its words are the runs between its whitespace
_QUOTING = re.compile(r"[\"'\\]")
_SHELL_SPACE = re.compile(r"[ \t\r\n]+")
# a revision number, or what resolves to one: a version tag, an image, a digest
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,254}$")
_ALL_OPTIONS = frozenset(
    {"--to", "--at", "--immediate", "--dry-run", "--force", "--phases", "--rehearse", "--region"}
)
_VALUED = ("--to", "--at", "--phases", "--region")  # options followed by a value
_LISTS = ("--phases", "--region")  # comma-separated values: `a, b` typed with spaces stays whole
# a phase name as typed: the plan decides which exist (bot.rollback.phases.select_phases)
_PHASE_NAME = re.compile(r"^[a-z][a-z_]{0,39}$")
_REGION = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_ROLLBACK_ID = re.compile(r"^#?([0-9]{1,12})$")


class UsageError(ValueError):
    """The text does not follow the grammar; the message says what was wrong. ``suggestion``:
    what was probably meant (a typo's nearest word), which makes the whole grammar needless."""

    def __init__(self, message: str, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.suggestion = suggestion


def closest(word: str, known: tuple[str, ...] | list[str] | set[str]) -> str | None:
    """The known word nearest to a typo (``asess`` → ``assess``), or None when none is close."""
    found = difflib.get_close_matches(word.lower(), sorted(known), n=1, cutoff=0.6)
    return found[0] if found else None


@dataclass(frozen=True)
class Command:
    verb: str
    service: str | None = None
    rollback_id: int | None = None
    target_revision: str | None = None
    at: str | None = None
    reason: str = ""
    is_immediate: bool = False
    is_dry_run: bool = False
    is_forced: bool = False  # past the point of no return (approvers only)
    rehearse: bool = False  # drill --rehearse: a real rollback and roll-forward in staging
    phases: tuple[str, ...] = ()  # --phases: the subset of the plan's phases to run (empty: all)
    regions: tuple[str, ...] | None = None  # --region: only these regions (None: all)


def parse_revision(text: str) -> str:
    """A target revision (``41``, or a version tag, image or digest that names one), or
    UsageError. Which revision a tag names is decided against the cluster before a start."""
    if not _REVISION.match(text):
        raise UsageError(
            f"`{text}` is not a revision (a number like 41, or a version tag, image or digest)"
        )
    return text


def parse_phases(text: str) -> tuple[str, ...]:
    """``--phases application,verification`` (also ``Stop-Traffic``): lower-case names in the
    order given, each once; which exist is the plan's to say. UsageError when none is named."""
    names: list[str] = []
    for part in text.split(","):
        name = part.strip().lower().replace("-", "_")
        if not name:
            continue
        if not _PHASE_NAME.match(name):
            raise UsageError(f"`{part.strip()}` is not a phase name (like application)")
        if name not in names:
            names.append(name)
    if not names:
        raise UsageError(
            "`--phases` names no phase: give one or more, like application,verification"
        )
    return tuple(names)


def _rollback_id(token: str) -> int:
    m = _ROLLBACK_ID.match(token)
    if not m:
        raise UsageError(f"`{token}` is not a rollback id (a number, like 42)")
    return int(m.group(1))


def _tokens(text: str) -> list[str]:
    """Shell-like words (so ``"two words"`` is one), or plain words when quotes do not pair up:
    reasons are free text and an apostrophe (``it's broken``) must not make them unreadable."""
    if _QUOTING.search(text) is None:  # what shlex.split gives, without its per-character loop
        return [word for word in _SHELL_SPACE.split(text) if word]
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def parse_command(text: str) -> Command:
    """Parse the text after ``/rollback``. Flags may appear anywhere after the service."""
    tokens = _tokens(text.strip())
    if not tokens:
        return Command("help")
    verb, args = tokens[0].lower(), tokens[1:]
    if verb not in VERBS:
        if (guess := closest(verb, VERBS)) is not None:
            raise UsageError(f"unknown subcommand `{verb}`: did you mean `{guess}`?", guess)
        raise UsageError(f"unknown subcommand `{verb}`")
    if verb == "help":
        return Command("help")
    if verb == "guard":
        return _guard_command(args)
    if verb in ("assess", "plan", "run", "drill"):
        return _service_command(verb, args)
    if verb in ("approve", "reject", "abort", "review"):
        if not args:
            raise UsageError(f"`/rollback {verb}` needs a rollback id")
        if verb in ("approve", "review") and len(args) > 1:
            raise UsageError(f"`/rollback {verb}` takes only a rollback id")
        return Command(verb, rollback_id=_rollback_id(args[0]), reason=" ".join(args[1:]))
    # status / history: optional id or service
    if len(args) > 1:
        raise UsageError(f"`/rollback {verb}` takes at most one argument")
    if not args:
        return Command(verb)
    if verb == "status" and _ROLLBACK_ID.match(args[0]):
        return Command(verb, rollback_id=_rollback_id(args[0]))
    return Command(verb, service=args[0].lower())


GUARD_SWITCHES = ("on", "off")


def _guard_command(args: list[str]) -> Command:
    """``guard <service>`` shows the guard; ``guard <service> on|off`` resumes or pauses it."""
    if not args:
        raise UsageError("`/rollback guard` needs a service name")
    if len(args) > 2:
        raise UsageError("`/rollback guard` takes a service name and optionally on or off")
    switch = args[1].lower() if len(args) == 2 else ""
    if switch and switch not in GUARD_SWITCHES:
        raise UsageError(f"`{args[1]}` is not on or off")
    return Command("guard", service=args[0].lower(), reason=switch)


_VERB_OPTIONS = {
    "plan": {"--at", "--phases", "--region"},
    "run": {"--immediate", "--dry-run", "--force", "--phases", "--region"},
    "drill": {"--rehearse"},
}


def _assess_command(service: str, rest: list[str]) -> Command:
    if rest[:1] == ["--region"] and len(rest) == 2:
        return Command("assess", service=service, regions=parse_regions(rest[1]))
    if rest:
        raise UsageError("`/rollback assess` takes a service name and optionally --region")
    return Command("assess", service=service)


def _service_command(verb: str, args: list[str]) -> Command:
    if not args or args[0].startswith("-"):
        raise UsageError(f"`/rollback {verb}` needs a service name")
    service, rest = args[0].lower(), args[1:]
    if verb == "assess":
        return _assess_command(service, rest)
    allowed = {"--to"} | _VERB_OPTIONS[verb]
    values: dict[str, str] = {}
    flags: set[str] = set()
    reason: list[str] = []
    i = 0
    while i < len(rest):
        token = rest[i]
        if token.startswith("--"):
            if token not in allowed:
                problem = f"`{token}` is not an option of `/rollback {verb}`"
                is_other_verbs = token in _ALL_OPTIONS  # e.g. plan's --at: no guess, the usage
                if not is_other_verbs and (guess := closest(token, allowed)) is not None:
                    raise UsageError(f"{problem}: did you mean `{guess}`?", guess)
                raise UsageError(problem)
            if token in _VALUED:
                if i + 1 >= len(rest) or rest[i + 1].startswith("--"):
                    raise UsageError(f"`{token}` needs a value")
                if token in values:
                    raise UsageError(f"`{token}` is given twice; give it once")
                values[token] = rest[i + 1]
                i += 2
                # `--phases application, verification`: a list typed with spaces stays whole
                while token in _LISTS and values[token].endswith(",") and i < len(rest):
                    if rest[i].startswith("--"):
                        break
                    values[token] += rest[i]
                    i += 1
                continue
            flags.add(token)
        else:
            reason.append(token)
        i += 1
    if verb == "drill" and reason and "--rehearse" not in flags:  # a drill changes nothing
        raise UsageError(f"`{reason[0]}` is not an option of `/rollback drill`")
    target = values.get("--to")
    if target is not None:
        parse_revision(target)
    phases = values.get("--phases")
    region = values.get("--region")
    return Command(
        verb,
        service=service,
        target_revision=target,
        at=values.get("--at"),
        reason=" ".join(reason),
        is_immediate="--immediate" in flags,
        is_dry_run="--dry-run" in flags,
        is_forced="--force" in flags,
        rehearse="--rehearse" in flags,
        phases=parse_phases(phases) if phases is not None else (),
        regions=parse_regions(region) if region is not None else None,
    )


def parse_regions(text: str) -> tuple[str, ...]:
    """``eu-west-1,us-east-1`` → the region names, in the order given (each once)."""
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    if not names or any(not _REGION.match(n) for n in names):
        raise UsageError(
            f"`{text}` is not a list of regions (names separated by commas, e.g."
            " `--region eu-west-1,us-east-1`)"
        )
    return names


MAX_WINDOW_AHEAD = timedelta(days=7)
_CLOCK_TIME = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")


def parse_window(text: str, now: datetime, tz: tzinfo = UTC) -> datetime:
    """``--at`` as an aware UTC datetime: ``HH:MM`` is the next such time in ``tz`` (the
    service's time zone), otherwise an ISO 8601 time (in ``tz`` when it has no offset). Past
    times and times over a week away are refused."""
    m = _CLOCK_TIME.match(text)
    if m:
        local = now.astimezone(tz)
        day = local.date()
        wall = time(int(m.group(1)), int(m.group(2)))
        at = datetime.combine(day, wall, tzinfo=tz)
        if at <= now:
            at = datetime.combine(day + timedelta(days=1), wall, tzinfo=tz)
        return at.astimezone(UTC)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"`{text}` is not a time: use HH:MM (e.g. 22:00, {zone_name(tz)}) or ISO 8601"
            " (e.g. 2026-11-24T22:00+01:00)"
        ) from None
    at = (at.replace(tzinfo=tz) if at.tzinfo is None else at).astimezone(UTC)
    if at <= now:
        raise UsageError(f"`{text}` is in the past (it is {local_time(now, tz)} now)")
    if at - now > MAX_WINDOW_AHEAD:
        raise UsageError(f"`{text}` is more than {MAX_WINDOW_AHEAD.days} days away")
    return at


def zone_name(tz: tzinfo) -> str:
    return str(getattr(tz, "key", None) or tz.tzname(None) or "UTC")


def local_time(at: datetime, tz: tzinfo = UTC) -> str:
    """``2026-11-24 22:00 CET (21:00 UTC)`` — or just ``2026-11-24 21:00 UTC`` in UTC."""
    utc = at.astimezone(UTC)
    local = utc.astimezone(tz)
    if local.utcoffset() == timedelta(0) and zone_name(tz) in ("UTC", "Etc/UTC"):
        return f"{utc:%Y-%m-%d %H:%M} UTC"
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()} ({utc:%H:%M} UTC)"
