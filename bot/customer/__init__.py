"""Customer-facing status text (seed 002 "Customer Communication"): draft updates in Slack for a
critical rollback, edited and published to a status page only by a person's click."""
