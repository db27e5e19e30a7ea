"""Prometheus metrics (``/metrics``): request latency, audit lag (events waiting for the chainer,
events not yet signed), job-queue depth, replica lag.

Request latency is counted by each gunicorn worker into files of ``ESANTE_METRICS_DIR``
(prometheus_client's multiprocess mode, switched on by the settings before the library is first
imported); a scrape, whichever worker answers it, adds up every worker's files. The gauges (audit
lag, queue depth) are computed at scrape time from the database, the heads file and the queue,
so they are the same whichever worker answers; so is the standby's lag (``esante.core.replica``),
checked at each scrape. The reads sent to the standby or the primary and the fallbacks are counted
by each worker (``esante.core.replica`` defines those two counters: it does not import this
module, which imports it).

Labels never carry a path, a query or an identifier: a view's name (``core:landing``, or
``unmatched`` when no route matched) and a status class (``2xx``...). No patient datum reaches a
metric.
"""

import datetime
import ipaddress
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from esante.audit.heads import last_head
from esante.audit.models import AuditChainHead, AuditEvent

from .http import client_address, from_trusted_proxy
from .replica import monitor

logger = logging.getLogger("esante.metrics")

REQUEST_LATENCY = Histogram(
    "esante_http_request_duration_seconds",
    "Time to answer a request, by view name and status class.",
    ["view", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

# Set by ``esante serve``'s master process (esante.core.leader); its workers hold 0. "max" over
# this instance's processes: 1 on the app server that holds the leader lock, 0 on the others (each
# ``esante serve`` has a metrics directory of its own).
LEADER = Gauge(
    "esante_leader",
    "1 while this app server holds the leader lock (runs the audit signer and the log sequencer).",
    multiprocess_mode="max",
)


def view_label(request: HttpRequest) -> str:
    """The route's name, never the path (which may carry identifiers); ``unmatched`` when no route
    matched (a scanner's paths must not grow the label set)."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    return match.view_name or getattr(match, "_func_path", "") or "unnamed"


class RequestMetricsMiddleware:
    """Observes every request's duration under its view's name and status class."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        REQUEST_LATENCY.labels(view=view_label(request), status=f"{response.status_code // 100}xx").observe(
            time.perf_counter() - started
        )
        return response


def metrics_allowed(request: HttpRequest) -> bool:
    """True when the client is in one of ``ESANTE_METRICS_ALLOWED``'s networks. A request that
    carries a forwarded address without coming from a trusted proxy is refused: behind a proxy
    the platform does not trust, every client would look like the proxy (often loopback)."""
    if request.META.get("HTTP_X_FORWARDED_FOR") and not from_trusted_proxy(request):
        return False
    address = client_address(request)
    if address is None:
        return False
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in settings.METRICS_ALLOWED_NETWORKS)


class PlatformCollector(Collector):
    """The gauges read at scrape time: audit lag and job-queue depth, and whether each source
    answered (``esante_metrics_source_up``)."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "esante_metrics_source_up", "1 when the source answered this scrape, else 0.", labels=["source"]
        )
        try:
            yield from self._audit()
            up.add_metric(["audit"], 1)
        except Exception:
            logger.exception("metrics: the audit lag could not be read")
            up.add_metric(["audit"], 0)
        try:
            yield from self._queue()
            up.add_metric(["job_queue"], 1)
        except Exception:
            logger.exception("metrics: the job queue's depth could not be read")
            up.add_metric(["job_queue"], 0)
        if settings.ESANTE_REPLICA:
            yield from self._replica()
        yield up

    def _replica(self) -> Iterator[Metric]:
        status = monitor.check_now()
        yield GaugeMetricFamily(
            "esante_replica_up",
            "1 when the standby answers as a hot standby, else 0.",
            value=0 if status.reason in ("down", "not_standby", "error") else 1,
        )
        yield GaugeMetricFamily(
            "esante_replica_usable",
            "1 when lag-tolerant reads go to the standby (it answers within the lag allowed), else 0.",
            value=1 if status.usable else 0,
        )
        if status.lag_seconds is not None:
            yield GaugeMetricFamily(
                "esante_replica_lag_seconds",
                "How far the standby is behind the primary: 0 when it has replayed everything the "
                "primary had written at the check, else the age of the last transaction it replayed.",
                value=status.lag_seconds,
            )

    def _audit(self) -> Iterator[Metric]:
        head = AuditChainHead.objects.filter(pk=1).values_list("sequence", flat=True).first() or 0
        signed_head = last_head()
        signed = signed_head.sequence if signed_head is not None else 0
        unsigned = max(0, head - signed)
        oldest_age = 0.0
        if unsigned:
            oldest = (
                AuditEvent.objects.filter(sequence=signed + 1).values_list("created_at", flat=True).first()
            )
            if oldest is not None:
                oldest_age = max(0.0, (datetime.datetime.now(datetime.UTC) - oldest).total_seconds())
        # Batched chaining (``AUDIT_CHAINING = "batched"``): events committed but not chained yet
        # (the partial index on waiting rows answers both; always 0 with inline chaining). A
        # number that keeps growing means no leader's sequencer (or ``sequence_log``) is chaining.
        waiting = AuditEvent.objects.filter(sequence=None)
        unchained = waiting.count()
        unchained_age = 0.0
        if unchained:
            first = waiting.order_by("id").values_list("created_at", flat=True).first()
            if first is not None:
                unchained_age = max(0.0, (datetime.datetime.now(datetime.UTC) - first).total_seconds())
        yield GaugeMetricFamily(
            "esante_audit_chain_sequence", "Sequence of the audit chain's head.", value=head
        )
        yield GaugeMetricFamily(
            "esante_audit_unchained_events",
            "Audit events committed but not yet chained (batched chaining; 0 with inline chaining).",
            value=unchained,
        )
        yield GaugeMetricFamily(
            "esante_audit_unchained_oldest_seconds",
            "Age of the oldest audit event waiting for the chainer (0 when none waits).",
            value=unchained_age,
        )
        yield GaugeMetricFamily(
            "esante_audit_signed_sequence",
            "Sequence of the last signed head in the heads file.",
            value=signed,
        )
        yield GaugeMetricFamily(
            "esante_audit_unsigned_events",
            "Audit events written but not yet signed into a head.",
            value=unsigned,
        )
        yield GaugeMetricFamily(
            "esante_audit_unsigned_oldest_seconds",
            "Age of the oldest audit event not yet signed into a head (0 when all are signed).",
            value=oldest_age,
        )

    def _queue(self) -> Iterator[Metric]:
        from .jobs import queue

        yield GaugeMetricFamily(
            "esante_job_queue_pending",
            "Jobs waiting in the queue for a consumer.",
            value=queue.pending_count(),
        )
        yield GaugeMetricFamily(
            "esante_job_queue_scheduled",
            "Jobs scheduled for later (retries waiting for their delay).",
            value=queue.scheduled_count(),
        )


def metrics_page() -> tuple[bytes, str]:
    """The exposition text: every worker's counters added up, then the scrape-time gauges."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(settings.ESANTE_METRICS_DIR))
    registry.register(PlatformCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST


_PID_FILE = re.compile(r"_(\d+)\.db$")


def metrics_dir_clean(path: Path | None = None) -> int:
    """Removes the metric files of processes no longer running (``esante serve`` at start): the
    counters of a past run are not added to this run's. Returns how many files were removed."""
    path = path or settings.ESANTE_METRICS_DIR
    removed = 0
    for file in path.glob("*.db"):
        found = _PID_FILE.search(file.name)
        if found is None or _running(int(found.group(1))):
            continue
        file.unlink(missing_ok=True)
        removed += 1
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
