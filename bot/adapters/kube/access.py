"""SelfSubjectAccessReview: may the bot's own credentials make a request (``kubectl auth can-i``)?

The review is a question, stored nowhere: the API server answers it from its authorizers
(RBAC) for whoever sends it, so the bot learns its permissions before it needs them.
"""

from __future__ import annotations

from kubernetes import client as k8s

from bot.adapters.kube.session import ApiSession
from bot.adapters.kube.values import AccessCheck, AccessDecision, KubeTarget


class AccessReviews(ApiSession):
    """The SelfSubjectAccessReview method of KubernetesClient."""

    def may(self, t: KubeTarget, check: AccessCheck) -> AccessDecision:
        """What the API server of ``t``'s context says of ``check`` for the bot's credentials."""
        attributes = k8s.V1ResourceAttributes(
            verb=check.verb,
            group=check.group,
            resource=check.resource,
            subresource=check.subresource or None,
            name=check.name or None,
            namespace=check.namespace,
        )
        body = k8s.V1SelfSubjectAccessReview(
            api_version="authorization.k8s.io/v1",
            kind="SelfSubjectAccessReview",
            spec=k8s.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes),
        )
        api = k8s.AuthorizationV1Api(self._client(t))
        answer = self._call(
            f"POST selfsubjectaccessreview ({check})",
            lambda: api.create_self_subject_access_review(body, _request_timeout=self._timeout),
        )
        status = answer.status
        if status is None:
            return AccessDecision(False, False, "the API server's review had no status")
        return AccessDecision(
            is_allowed=bool(status.allowed),
            is_denied=bool(status.denied),
            reason=status.reason or "",
            evaluation_error=status.evaluation_error or "",
        )
