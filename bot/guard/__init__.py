"""The automatic guard (seed 001 "Automatic Rollback System"): it notices every new release of
a service with ``auto_rollback.enabled``, watches its triggers for ``watch_minutes`` and rolls
back (or asks) when one holds for long enough. ``watch`` runs the rounds, ``releases`` notices
new releases, ``readings`` reads Prometheus in batches, ``firing`` acts, ``message`` shows it,
``answers`` is ``/rollback guard``."""
