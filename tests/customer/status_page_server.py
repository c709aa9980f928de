"""The tests' status page: the strict loopback simulator of bot/sim (``console --demo`` runs it
too), with ``url`` the hook's full address, as the tests' catalogs name it."""

from __future__ import annotations

from bot.sim.status_page_api import FIELDS, PATH, STATUSES, Received, StatusPageSimulator

__all__ = ["FIELDS", "PATH", "STATUSES", "Received", "StatusPageServer"]


class StatusPageServer(StatusPageSimulator):
    @property
    def url(self) -> str:
        return self.hook_url
