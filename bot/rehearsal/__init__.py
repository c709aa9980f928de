"""Rehearsals: ``/rollback drill <service> --rehearse`` rolls the service back in staging through
the rollback engine, verifies it, rolls it forward to the release it started from, and posts the
timings against the SLA (seed 000's weekly staging test, seed 001's rehearsal).

A rehearsal is a rollback row of kind ``rehearsal`` stored under the key ``<service>@staging``
(``bot.catalog.load.staging_key``): stored before it acts and resumed like any rollback, but
apart from the service's production rollbacks — its one-active slot, its do-no-harm history, its
notices, pages, reviews and metrics never see it. The engine acts on the catalog's staging twin
of the service (``Catalog.target_of``), so every request goes to the ``staging:`` target.
"""
