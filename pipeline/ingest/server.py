"""Serving the API: gunicorn (one worker, threads) by default, Flask's dev server with `--dev`.

One worker process keeps a single Kafka producer and exact in-process Prometheus metrics; the
gthread worker's threads serve concurrent requests while each waits for its broker acks. The app
is built in the worker (not preloaded), so librdkafka's threads start after the fork.

`threads` requests may wait for the sinks at once; the worker runs OPS_THREADS more, so a stuck
broker cannot starve /healthz, /readyz and /metrics (a request over the limit gets 503 at once).

SIGTERM: gunicorn stops accepting and lets in-flight requests finish (each is bounded by
api_timeout_s, for metadata and for delivery); the worker then flushes the producer for at most
api_shutdown_flush_s, drops what is left, and exits.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
from typing import Any

from gunicorn.app.base import BaseApplication

from pipeline.config import Settings
from pipeline.ingest.app import create_app, ingest_of

log = logging.getLogger(__name__)

OPS_THREADS = 2


def _leave_now(code: int) -> None:
    """Exit without the interpreter's teardown: once everything is answered and flushed, its
    garbage collection of a large heap only delays `make down` (1-2 s per process when busy)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _close_on_exit(_server: Any, worker: Any) -> None:
    """gunicorn `worker_exit` hook: flush the producer of the exiting worker."""
    app = getattr(worker, "wsgi", None)
    if app is not None and hasattr(app, "extensions"):
        ingest_of(app).close()
    if getattr(worker, "booted", False) and not getattr(worker, "alive", True):
        _leave_now(0)  # asked to stop (SIGTERM), requests answered, producer flushed


class _Gunicorn(BaseApplication):
    def __init__(self, settings: Settings, options: dict[str, Any], threads: int) -> None:
        self.settings = settings
        self.options = options
        self.threads = threads
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return create_app(self.settings, threads=self.threads)


def serve(
    settings: Settings,
    host: str,
    port: int,
    *,
    threads: int = 8,
    dev: bool = False,
    access_log: bool = False,
) -> None:
    if dev:
        app = create_app(settings, threads=threads)
        # SIGTERM (supervisord, docker stop) ends the dev server through `finally` as well
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            app.run(host=host, port=port, threaded=True, use_reloader=False)
        finally:
            ingest_of(app).close()
        return
    # A request may wait api_timeout_s for Kafka and as long again for metadata; the worker
    # must not be killed as "hung" before it answers 503.
    timeout = int(max(30, 4 * settings.api_timeout_s))
    # On SIGTERM: in-flight requests (at most 2 x api_timeout_s each), then the bounded flush;
    # the master kills the worker after this long.
    graceful = math.ceil(2 * settings.api_timeout_s + settings.api_shutdown_flush_s + 5)
    options: dict[str, Any] = {
        "bind": f"{host}:{port}",
        "workers": 1,
        "worker_class": "gthread",
        "threads": threads + OPS_THREADS,
        "timeout": timeout,
        "graceful_timeout": graceful,
        # gunicorn's default control socket is one path per user ($HOME/.gunicorn/gunicorn.ctl):
        # a second API on the machine would take it over from the first.
        "control_socket_disable": True,
        "keepalive": 5,
        "worker_exit": _close_on_exit,
        "accesslog": "-" if access_log else None,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "pinpipe-api",
    }
    try:
        _Gunicorn(settings, options, threads).run()
    except SystemExit as done:  # the master, once its worker has exited: nothing left to do
        _leave_now(done.code if isinstance(done.code, int) else (0 if done.code is None else 1))
