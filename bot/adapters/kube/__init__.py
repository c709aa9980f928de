"""The Kubernetes adapter: the client (client.py), its session, kubectl's rollout rules
(kubectl.py), resources, values and API errors."""
