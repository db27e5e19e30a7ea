"""Serving the portal with gunicorn (``esante serve`` and ``esante demo``), and, when asked, the
certificate origin (HTTPS with client certificates) as a second gunicorn in a child process."""

import contextlib
import ctypes
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from gunicorn.app.base import BaseApplication

from esante.accounts.tls_origin import CertificateOrigin
from esante.audit.anchoring import anchor_loop, audit_anchor
from esante.core.leader import lead_while_held, leader_lock
from esante.core.metrics import metrics_dir_clean
from esante.tlog.sequencer import sequence_loop, sequence_pending
from esante.tlog.witnessing import witness_latest

logger = logging.getLogger("esante.serve")


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)
        # gunicorn >= 25.1 opens a control socket (resize workers, reload, stop) at one path per
        # user, ~/.gunicorn/gunicorn.ctl: every ``esante serve`` on a host (esante@.service runs
        # several) would take the same path, and the platform is managed by systemd and signals,
        # not by that interface. None is opened.
        self.cfg.set("control_socket_disable", True)

    def load(self) -> Any:
        from esante.wsgi import application

        return application


def _sign_audit_heads(stop: threading.Event) -> None:
    """The audit signer, a thread of gunicorn's master process: workers are forked without it, so
    one ``esante serve`` signs once, however many workers it runs. Several signers on one host
    (``esante anchor_audit --every`` too) queue on the heads file's lock."""
    anchor_loop(
        stop, interval=settings.AUDIT_ANCHOR_INTERVAL, every_events=settings.AUDIT_ANCHOR_EVERY_EVENTS
    )


def sequencing_interval() -> float:
    """How often the leader sequences: with batched chaining, the chainer's interval too (an event
    is in a signed checkpoint within about that long of its commit)."""
    if settings.AUDIT_CHAINING == "batched":
        return min(settings.AUDIT_CHAIN_INTERVAL, settings.TLOG_SEQUENCE_INTERVAL)
    return float(settings.TLOG_SEQUENCE_INTERVAL)


def _background_loops(stop: threading.Event) -> list[threading.Thread]:
    """One term of leadership (``esante.core.leader``): the audit signer and the public log's
    sequencer, threads of the master process until ``stop`` is set."""
    threads = [
        threading.Thread(target=_sign_audit_heads, args=(stop,), daemon=True, name="audit-anchor"),
        threading.Thread(
            target=sequence_loop,
            args=(stop,),
            kwargs={"interval": sequencing_interval()},
            daemon=True,
            name="tlog-sequencer",
        ),
    ]
    for thread in threads:
        thread.start()
    return threads


def _last_round() -> None:
    """The leader's last signature and sequencing, once the portal stopped serving."""
    try:
        audit_anchor()
    except Exception:
        logger.exception("audit anchoring failed")
    try:
        sequence_pending()
        witness_latest()
    except Exception:
        logger.exception("public log sequencing failed")
    finally:
        close_old_connections()


class OriginStartError(RuntimeError):
    """The certificate origin did not start (port taken, unreadable certificate, ...)."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the origin gets SIGTERM if the portal's process dies without stopping it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def origin_start(origin: CertificateOrigin, *, timeout: float = 15.0) -> subprocess.Popen[bytes]:
    """Starts the certificate origin (gunicorn, TLS asking for a client certificate) in a child
    process and waits until it accepts connections; raises ``OriginStartError`` otherwise."""
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"{origin.host}:{origin.port}",
        "--worker-class",
        "gthread",
        "--workers",
        "1",
        "--threads",
        "4",
        "--timeout",
        "60",
        "--certfile",
        origin.certfile,
        "--keyfile",
        origin.keyfile,
        "--ca-certs",
        origin.client_ca_file,
        "--cert-reqs",
        str(int(ssl.CERT_OPTIONAL)),  # see esante.accounts.tls_origin
        "--log-level",
        "warning",
        "esante.accounts.tls_origin:application",
    ]
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "esante.settings")
    process = subprocess.Popen(command, env=env, preexec_fn=_die_with_parent)  # noqa: S603, PLW1509
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise OriginStartError(f"certificate origin exited with status {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((origin.host, origin.port), timeout=0.5):
            return process
        time.sleep(0.1)
    origin_stop(process)
    raise OriginStartError(f"certificate origin not listening on {origin.host}:{origin.port}")


def origin_stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def jobs_start() -> subprocess.Popen[bytes]:
    """Starts the job queue's consumer (``esante run_jobs``) in a child process that dies with us."""
    command = [sys.executable, "-m", "esante.cli", "run_jobs"]
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "esante.settings")
    return subprocess.Popen(command, env=env, preexec_fn=_die_with_parent)  # noqa: S603, PLW1509


def jobs_stop(process: subprocess.Popen[bytes], *, timeout: float = 20.0) -> None:
    """SIGINT: the consumer lets its running jobs finish (at most ``timeout`` seconds)."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run(
    *,
    host: str,
    port: int,
    workers: int,
    threads: int,
    certificate_origin: CertificateOrigin | None = None,
    jobs: bool = True,
    leader: bool = True,
) -> None:
    """Runs gunicorn in the foreground. With ``leader``, competes for the leader lock
    (``esante.core.leader``) with the other ``esante serve`` on the database: while it holds it,
    signs the audit head (``anchor_loop``) and sequences the public log (``sequence_loop``), and
    does both once more when it stops.

    With ``certificate_origin``, also serves the certificate origin for as long as the portal runs.
    With ``jobs`` (and a queue that is not ``immediate``), also runs the job queue's consumer
    (``esante run_jobs``) in a child process: the certified copies need no other service.
    """
    # The counters of the workers of an earlier run are not added to this run's (Prometheus sees a
    # restart as a counter reset).
    metrics_dir_clean()
    origin_process = origin_start(certificate_origin) if certificate_origin is not None else None
    jobs_process = jobs_start() if jobs and settings.ESANTE_QUEUE != "immediate" else None
    stop = threading.Event()
    leader_thread = None
    if leader:
        leader_thread = threading.Thread(
            target=lead_while_held,
            args=(stop, leader_lock()),
            kwargs={"start": _background_loops, "on_last_term_end": _last_round},
            daemon=True,
            name="leader",
        )
        leader_thread.start()
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
        if origin_process is not None:
            origin_stop(origin_process)
        if jobs_process is not None:
            jobs_stop(jobs_process)
        if leader_thread is not None:
            # The leader signs and sequences once more, still holding the lock, then steps down.
            leader_thread.join(timeout=120)
