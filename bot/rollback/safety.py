"""Rules that keep a rollback from making things worse, checked before anything is started.

Pure: the caller reads the cluster's revisions and the bot's own rollback history and hands
them in. Two rules live here:

- a ``--to`` target is a revision number, or a version tag, image or digest that names exactly
  one revision of the deployment (never a guess);
- an undo never goes back to a release that an earlier rollback of the service moved away from
  (kubectl's undo flip-flops: the second undo after v3 → v2 re-deploys v3). Releases are known
  by their pod template, not their number: an undo re-labels the old ReplicaSet with a new one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

_DIGEST = re.compile(r"^sha256:[0-9a-f]{7,64}$")


class Refusal(Exception):
    """The rollback must not start; the message says why and what to do instead (one or more
    sentences, the last without its full stop: callers add their own words after it)."""

    def __init__(self, message: str) -> None:
        super().__init__(message.rstrip(". "))


@dataclass(frozen=True)
class KnownRevision:
    """One revision of a deployment as the rules need it."""

    number: int
    images: Mapping[str, str]
    template: str  # fingerprint of the pod template ("" when unknown)


@dataclass(frozen=True)
class RolledBackFrom:
    """A release an earlier rollback of the service moved away from."""

    rollback_id: int
    deployment: str
    revision: int
    images: Mapping[str, str]
    template: str  # "" for rollbacks recorded before fingerprints were kept
    at: datetime | None


def release_label(images: Mapping[str, str]) -> str:
    """``checkout:v3`` for ``registry.example.com/shop/checkout:v3`` (every container's image)."""
    names = [image.rsplit("/", 1)[-1] for image in images.values() if image]
    return ", ".join(names) or "no image"


def revisions_text(revisions: Sequence[KnownRevision], current: int | None = None) -> str:
    """``1 (checkout:v1) · 2 (checkout:v2) · 3 (checkout:v3, current)``."""
    parts = []
    for r in sorted(revisions, key=lambda r: r.number):
        now = ", current" if r.number == current else ""
        parts.append(f"{r.number} ({release_label(r.images)}{now})")
    return " · ".join(parts) or "none"


def _matches(image: str, wanted: str) -> bool:
    """A whole image, its last path segment (``checkout:v2``), its tag or its digest."""
    if image == wanted:
        return True
    name, _, digest = image.partition("@")
    if _DIGEST.match(wanted):
        return bool(digest) and digest.startswith(wanted)
    last = name.rsplit("/", 1)[-1]
    tag = last.partition(":")[2]
    return wanted == last or (bool(tag) and wanted == tag)


def resolve_target(
    text: str, revisions: Sequence[KnownRevision], *, deployment: str, current: int | None = None
) -> int:
    """The revision number ``--to text`` names, or a Refusal listing the revisions."""
    listing = f"Revisions of {deployment}: {revisions_text(revisions, current)}."
    if text.isdigit():
        number = int(text)
        if number == 0:
            raise Refusal(f"`--to 0` is not a revision. {listing}")
        if not any(r.number == number for r in revisions):
            raise Refusal(f"{deployment} has no revision {number} in its history. {listing}")
        return number
    found = sorted(
        {r.number for r in revisions if any(_matches(i, text) for i in r.images.values())}
    )
    if not found:
        raise Refusal(
            f"No revision of {deployment} runs `{text}` (a version tag, image or digest)."
            f" {listing} Choose one with `--to N`."
        )
    if len(found) > 1:
        numbers = ", ".join(str(n) for n in found)
        raise Refusal(
            f"`{text}` matches several revisions of {deployment} ({numbers}): they differ in"
            f" something other than the image. {listing} Choose one with `--to N`."
        )
    return found[0]


def rolled_back_from(
    history: Sequence[RolledBackFrom],
    *,
    deployment: str,
    template: str,
    images: Mapping[str, str],
) -> RolledBackFrom | None:
    """The newest earlier rollback that moved ``deployment`` away from this release, if any.
    Releases recorded without a fingerprint are compared by their images (the cautious way)."""
    for earlier in history:
        if earlier.deployment != deployment:
            continue
        if earlier.template and template:
            if earlier.template == template:
                return earlier
        elif dict(earlier.images) == dict(images):
            return earlier
    return None


def ago(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "earlier"
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def flip_flop_text(service: str, earlier: RolledBackFrom, now: datetime) -> str:
    return (
        f"{service} was rolled back from {release_label(earlier.images)} by"
        f" #{earlier.rollback_id} ({ago(earlier.at, now)}) — undoing again would re-deploy it;"
        " use `--to N` to choose a revision"
    )
