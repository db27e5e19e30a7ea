"""Serving the portal with gunicorn (``esante serve`` and ``esante demo``)."""

import logging
import threading
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from gunicorn.app.base import BaseApplication

from esante.audit.anchoring import audit_anchor

logger = logging.getLogger("esante.serve")


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from esante.wsgi import application

        return application


def _anchor_periodically(stop: threading.Event) -> None:
    while not stop.wait(settings.AUDIT_ANCHOR_INTERVAL):
        try:
            audit_anchor()
        except Exception:
            logger.exception("audit anchoring failed")
        finally:
            close_old_connections()


def run(*, host: str, port: int, workers: int, threads: int) -> None:
    """Runs gunicorn in the foreground; signs the audit head every AUDIT_ANCHOR_INTERVAL seconds."""
    stop = threading.Event()
    threading.Thread(target=_anchor_periodically, args=(stop,), daemon=True, name="audit-anchor").start()
    try:
        _Gunicorn(
            {
                "bind": f"{host}:{port}",
                "workers": workers,
                "threads": threads,
                "accesslog": None,  # our request log already has one line per request, without query strings
                "timeout": 60,
            }
        ).run()
    finally:
        stop.set()
        audit_anchor()
