"""Kubernetes API adapter: the only importer of the ``kubernetes`` SDK (v37, pydantic models).

It speaks in the bot's terms (revisions, images, rollout status) and ports the kubectl behaviour
the bot relies on: ``rollout undo`` (``pkg/polymorphichelpers/rollback.go`` with
``pkg/util/deployment/deployment.go``), ``rollout status`` (``rollout_status.go``) and
``rollout restart`` (``objectrestarter.go``). Every failure leaves as :class:`KubeError`, in words.

The code lives in the :mod:`bot.adapters.kube` package, one concern a module: ``values`` (what
the adapter hands out, :class:`KubeError`), ``kubectl`` (the pure ports), ``api_errors`` (API
failures in words), ``session`` (ApiClients, retries), ``resources`` (Services, Jobs, any
object) and ``client`` (:class:`KubernetesClient`, Deployments). This module is the public entry
point: other code imports from here, never from the package.
"""

from __future__ import annotations

from bot.adapters.kube.api_errors import MAX_RETRY_AFTER_SECONDS, error_from_api
from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.kubectl import (
    ANNOTATIONS_TO_SKIP,
    CHANGE_CAUSE,
    POD_TEMPLATE_HASH,
    RESTARTED_AT,
    REVISION,
    TIMED_OUT_REASON,
    equal_ignore_hash,
    images_of,
    is_controlled_by,
    job_state_of,
    label_selector_string,
    meta,
    revision_of,
    rollout_status_of,
    select_revision,
    template_without_hash,
    undo_annotations,
    undo_patch,
    wire,
)
from bot.adapters.kube.session import (
    JSON_PATCH,
    MERGE_PATCH,
    TRANSIENT_STATUSES,
    default_api_client_factory,
)
from bot.adapters.kube.values import (
    DeploymentInfo,
    JobState,
    KubeError,
    KubeTarget,
    ReleasePods,
    ReleaseState,
    Revision,
    RolloutStatus,
    UndoPlan,
)

__all__ = [
    "ANNOTATIONS_TO_SKIP",
    "CHANGE_CAUSE",
    "JSON_PATCH",
    "MAX_RETRY_AFTER_SECONDS",
    "MERGE_PATCH",
    "POD_TEMPLATE_HASH",
    "RESTARTED_AT",
    "REVISION",
    "TIMED_OUT_REASON",
    "TRANSIENT_STATUSES",
    "DeploymentInfo",
    "JobState",
    "KubeError",
    "KubeTarget",
    "KubernetesClient",
    "ReleasePods",
    "ReleaseState",
    "Revision",
    "RolloutStatus",
    "UndoPlan",
    "default_api_client_factory",
    "equal_ignore_hash",
    "error_from_api",
    "images_of",
    "is_controlled_by",
    "job_state_of",
    "label_selector_string",
    "meta",
    "revision_of",
    "rollout_status_of",
    "select_revision",
    "template_without_hash",
    "undo_annotations",
    "undo_patch",
    "wire",
]
