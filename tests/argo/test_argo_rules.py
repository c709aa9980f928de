"""The pure rules of bot/adapters/kube/argo.py: DeepDerivative, revisions, GetRolloutPhase."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as k8s

from bot.adapters.kube import argo


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ({"a": 1}, {"a": 1, "b": 2}, True),  # what the first leaves out is not compared
        ({"a": ""}, {"a": "x"}, True),  # an empty string is unset
        ({"a": {}}, {"a": {"b": 1}}, True),
        ({"a": []}, {"a": [1]}, True),
        ({"a": None}, {"a": 5}, True),  # a nil interface
        ({"a": 1}, {}, False),  # a key of the first missing from the second
        ({"a": {}}, {}, False),  # even an empty one: MapIndex is invalid
        ({"a": 1, "b": 2}, {"a": 1}, False),  # a longer map
        ([1, 2], [1], False),
        ([1], [1, 2], True),  # a list compares the first's items only
        (1, 1.0, False),  # int64 and float64 are different types
        (True, 1, False),
        ({"x": "a"}, {"x": "ab"}, False),
    ],
)
def test_deep_derivative(first: Any, second: Any, expected: bool) -> None:
    assert argo.deep_derivative(first, second) is expected


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        (None, 0),
        ({}, 0),
        ({argo.REVISION: "3"}, 3),
        ({argo.REVISION: "+4"}, 4),
        ({argo.REVISION: "x"}, None),
        ({argo.REVISION: " 3"}, None),
    ],
)
def test_revision_of(annotations: dict[str, str] | None, expected: int | None) -> None:
    assert argo.revision_of(annotations) == expected


def rollout(generation: int = 2, spec: Any = None, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "generation": generation},
        "spec": {"replicas": 2, "strategy": {"canary": {}}, **(spec or {})},
        "status": status,
    }


@pytest.mark.parametrize(
    ("ro", "expected"),
    [
        (
            rollout(observedGeneration="1", phase="Healthy"),
            ("Progressing", "waiting for rollout spec update to be observed"),
        ),
        (rollout(observedGeneration="abc123", phase="Healthy", message=""), ("Healthy", "")),
        (
            rollout(observedGeneration="2", controllerPause=True, phase="Paused"),
            ("Progressing", "waiting for rollout to unpause"),
        ),
        (
            rollout(observedGeneration="2", phase="Degraded", message="RolloutAborted: x"),
            ("Degraded", "RolloutAborted: x"),
        ),
        # no phase (a controller before 1.0): calculated as the plugin does
        (rollout(spec={"paused": True}), ("Paused", "manually paused")),
        (rollout(pauseConditions=[{"reason": "CanaryPauseStep"}]), ("Paused", "CanaryPauseStep")),
        (rollout(updatedReplicas=1), ("Progressing", "more replicas need to be updated")),
        (
            rollout(updatedReplicas=2, availableReplicas=2, currentPodHash="b", stableRS="a"),
            ("Progressing", "waiting for all steps to complete"),
        ),
        (
            rollout(updatedReplicas=2, availableReplicas=2, currentPodHash="b", stableRS="b"),
            ("Healthy", ""),
        ),
        (
            rollout(
                spec={"strategy": {"blueGreen": {}}},
                updatedReplicas=2,
                availableReplicas=2,
                currentPodHash="b",
                stableRS="a",
                blueGreen={"activeSelector": "a"},
            ),
            ("Progressing", "active service cutover pending"),
        ),
    ],
)
def test_rollout_phase(ro: dict[str, Any], expected: tuple[str, str]) -> None:
    assert argo.rollout_phase(ro) == expected


def test_the_status_words_are_the_plugins() -> None:
    degraded = argo.rollout_status_of(
        rollout(observedGeneration="2", phase="Degraded", message="ProgressDeadlineExceeded: x")
    )
    assert degraded.is_failed and not degraded.is_complete
    assert degraded.message == (
        'rollout "web": The rollout is in a degraded state with message:'
        " ProgressDeadlineExceeded: x"
    )
    paused = argo.rollout_status_of(rollout(observedGeneration="2", phase="Paused", message="X"))
    assert paused.is_paused and paused.message == 'rollout "web": Paused - X'
    assert argo.rollout_status_of(rollout(observedGeneration="2", phase="Healthy")).is_complete


def test_mid_update_means_not_fully_promoted_and_not_aborted() -> None:
    assert argo.is_mid_update(rollout(currentPodHash="b", stableRS="a"))
    assert not argo.is_mid_update(rollout(currentPodHash="a", stableRS="a"))
    assert not argo.is_mid_update(rollout(currentPodHash="b", stableRS="a", abort=True))


def test_a_spec_is_observed_once_its_generation_and_template_are_the_controllers() -> None:
    """observedGeneration is a string (as the controller writes it); the template must also be
    the one of the ReplicaSet status.currentPodHash names."""
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "a"}]}}
    rs = k8s.V1ReplicaSet(
        metadata=k8s.V1ObjectMeta(name="web-h1", labels={argo.POD_HASH: "h1"}),
        spec=k8s.V1ReplicaSetSpec(
            selector=k8s.V1LabelSelector(match_labels={"app": "web"}),
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels={"app": "web", argo.POD_HASH: "h1"}),
                spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="a", image="web:1")]),
            ),
        ),
    )
    image = {"template": {**template, "spec": {"containers": [{"name": "a", "image": "web:1"}]}}}
    observed = rollout(spec=image, currentPodHash="h1", observedGeneration="2")
    assert argo.is_spec_observed(observed, [rs])
    assert not argo.is_spec_observed(
        rollout(spec=image, currentPodHash="h1", observedGeneration="1"), [rs]
    )
    changed = {"template": {**template, "spec": {"containers": [{"name": "a", "image": "web:2"}]}}}
    assert not argo.is_spec_observed(rollout(spec=changed, currentPodHash="h1"), [rs])
