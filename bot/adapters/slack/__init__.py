"""Slack: the Web API client (``web``), cached lookups and idempotent posts."""
