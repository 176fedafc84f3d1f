"""How every paintbot process serves its metrics and health, on PAINTBOT_METRICS_PORT (unset: off).

Each process (bot, every worker, the scheduler) serves its own: `GET /metrics` (Prometheus text format,
whatever counters that process defines: bot/metrics.py, worker/metrics.py) and `GET /healthz` (200 when
the process can do its work, 503 otherwise).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import make_wsgi_app

log = logging.getLogger("paintbot")


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def serve(healthy: Callable[[], bool], port: int | None = None) -> int | None:
    """Start the metrics/health server in a daemon thread; return its port (None when off)."""
    if port is None:
        raw = os.environ.get("PAINTBOT_METRICS_PORT", "").strip()
        if not raw:
            return None
        port = int(raw)
    metrics = make_wsgi_app()

    def app(environ, start_response):
        if environ.get("PATH_INFO") == "/healthz":
            ok = False
            try:
                ok = healthy()
            except Exception:
                log.warning("health check failed", exc_info=True)
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"ok\n" if ok else b"unhealthy\n"]
        return metrics(environ, start_response)

    server = make_server("0.0.0.0", port, app, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("metrics and /healthz on port %d", server.server_port)
    return server.server_port
