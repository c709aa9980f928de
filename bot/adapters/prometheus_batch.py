"""Several PromQL queries in ONE instant query, and the answer split again per query.

The expression::

    label_replace((<q0>), "rb_key", "0", "", "") or label_replace((<q1>), "rb_key", "1", "", "") …

tags every series with its query's position; ``split`` gives each query its own series back. The
label carries a position, not a caller's key: keys are free text (quotes, an empty string would
delete the label), positions are always a valid, short label value.

Prometheus rejects the whole expression when one query is at fault (bad PromQL, a scalar or a
range vector where ``label_replace`` needs an instant vector): callers then read the queries one
at a time, so a bad query blinds only itself. Used by the guard (thousands of readings a round);
not by assessments, whose signals are read one request each so that a slow query blinds only
itself during an incident.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.adapters.prometheus import Sample

KEY_LABEL = "rb_key"


def batch_query(pairs: Sequence[tuple[str, str]]) -> str:
    """One PromQL expression answering every ``(key, promql)`` of ``pairs``, tagged by position."""
    return " or ".join(
        f'label_replace(({promql}), "{KEY_LABEL}", "{i}", "", "")'
        for i, (_, promql) in enumerate(pairs)
    )


def split(samples: Sequence[Sample], count: int) -> list[list[Sample]]:
    """The series of each of the ``count`` batched queries, in the order they were batched."""
    tagged: list[list[Sample]] = [[] for _ in range(count)]
    positions = {str(i): tagged[i] for i in range(count)}
    for sample in samples:
        found = positions.get(sample.labels.get(KEY_LABEL, ""))
        if found is not None:
            found.append(sample)
    return tagged
