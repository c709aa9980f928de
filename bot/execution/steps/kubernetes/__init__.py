"""Kubernetes step kinds: objects (snapshot, undo, image, selector, scale, restart), waits
(rollout, Job) and traffic (weight shifting); ``common`` holds what they share."""
