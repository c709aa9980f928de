"""A threaded WSGI server (waitress) around :class:`WebApp`, startable on port 0 for tests."""

from __future__ import annotations

import logging
import threading

from waitress.server import create_server

from bot.runtime.web import WebApp

log = logging.getLogger(__name__)

# Slack payloads (slash commands, interactivity, events) and Twilio callbacks are a few KiB; the
# routes read the whole body before they can check its signature, so waitress's default of 1 GiB
# would let anyone make a worker buffer a gigabyte. Larger requests are answered 413 unread.
MAX_REQUEST_BODY_BYTES = 1024 * 1024
# How long the server's select() sleeps when nothing happens. waitress converts it with int(), so
# a fraction (0.1 once) becomes 0: a busy poll that burnt ~45 % of a core while idle. stop() does
# not wait for it: it wakes the loop through waitress's trigger.
LOOP_TIMEOUT_SECONDS = 1


class HttpServer:
    def __init__(self, app: WebApp, host: str, port: int, threads: int) -> None:
        # connection_limit above threads: waiting connections queue instead of being refused
        self._server = create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            connection_limit=max(100, threads * 4),
            channel_timeout=30,
            max_request_body_size=MAX_REQUEST_BODY_BYTES,
            asyncore_loop_timeout=LOOP_TIMEOUT_SECONDS,
            ident="rollback-bot",
        )
        self._thread: threading.Thread | None = None
        self._is_stopped = False

    @property
    def port(self) -> int:
        return int(self._server.effective_port)  # type: ignore[union-attr]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve_forever(self) -> None:
        log.info("listening on port %d", self.port)
        self._server.run()

    def start(self) -> HttpServer:
        self._thread = threading.Thread(target=self._server.run, name="http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close every socket from inside the server's loop (closing from here races select())."""
        server = self._server

        def close_all() -> None:
            for channel in list(server._map.values()):  # type: ignore[union-attr]
                channel.close()

        if self._is_stopped:  # stopping twice (a test's teardown and the code under test) is fine
            return
        self._is_stopped = True
        try:
            if self._thread is not None and self._thread.is_alive():
                server.trigger.pull_trigger(close_all)  # type: ignore[union-attr]
                self._thread.join(timeout=5)
            else:
                server.close()
        except OSError as exc:  # the loop closed its sockets meanwhile: nothing left to close
            log.debug("http server already closed: %s", exc)
        server.task_dispatcher.shutdown()
