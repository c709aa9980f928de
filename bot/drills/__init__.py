"""Readiness drills: ``/rollback drill`` (run), its checks (target, permissions, readiness,
estimate), the report, the schedule (due work) and the drill gauges of /metrics."""
