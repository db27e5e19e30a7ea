"""Reads from a PostgreSQL hot standby: the router, the session's read-your-writes pin, the lag.

Design
------
The primary is the truth; a streaming hot standby (``ESANTE_REPLICA_DATABASE_URL``, the Django
alias ``replica``) serves some reads to take load off it. Which reads is a decision of the code,
never of the router's guesswork: a read goes to the standby only when it runs inside
``lag_tolerant(name, read)`` and ``name`` is one of ``ESANTE_REPLICA_READS`` — the patient search
(``patient_search``), the document lists of a professional's record page (``record_documents``)
and the patient's access journal (``patient_journal``). These show what was true a moment ago
without harm. Access decisions are never among them: whether a professional may open a record or
a document, and every write, are read and made on the primary, so a grant revoked, a block or an
opposition take effect at once whatever the standby lags. What a list may show for at most
``ESANTE_REPLICA_MAX_LAG_SECONDS`` is a line the primary changed meanwhile (a document the patient
just hid is still listed; opening it is refused, on the primary).

Everything else goes to the primary, and so does a ``lag_tolerant`` read when:

* a transaction is open on the primary's connection: a read inside a transaction may depend on
  what the transaction wrote, or feed what it writes next, and must see the same database;
* this session wrote (read-your-writes, below);
* the standby does not answer, is not a standby (a promoted server), or lags more than
  ``ESANTE_REPLICA_MAX_LAG_SECONDS`` (the monitor, below);
* the read fails on the standby (connection lost, a query cancelled by a recovery conflict): it is
  run again on the primary; a ``lag_tolerant`` read must therefore write nothing.

The last two are fallbacks: each one is counted (``esante_replica_fallback_total{read,reason}``)
and the monitor logs each change of the standby's state (usable, down, lagging), not every read.

Read-your-writes
----------------
A request that writes — any ``INSERT``, ``UPDATE`` or ``DELETE`` on the primary's connection, or any
statement not known to be a read, except on the tables that only trace reads (the audit trail,
record openings, sessions: ``register_trace_tables``) — reads only the primary for
the rest of the request. When it ends, the middleware reads the primary's WAL position
(``pg_current_wal_lsn()``, past the write's commit) and keeps it in the session with the time
("wrote at LSN L, at T"). The session's next requests read the primary until the standby has
replayed past L (the monitor's last check saw ``pg_last_wal_replay_lsn() >= L``) — on a healthy
standby that is the next check, within ``ESANTE_REPLICA_CHECK_SECONDS`` — or until
``ESANTE_REPLICA_PIN_SECONDS`` have passed; then the mark is dropped. The time limit is safe:
a standby that has not replayed L after that long lags, as measured below, at least as long, and
``ESANTE_REPLICA_PIN_SECONDS >= ESANTE_REPLICA_MAX_LAG_SECONDS`` (the settings refuse less) keeps
it out anyway. So a grant just declared, a dispensation just recorded, a document just hidden are
read back from the primary on the next page, and the standby serves the session again once it
holds them. Requests without a session (the FHIR API) carry no mark; their ``lag_tolerant`` read
(the patient search) does not depend on what the client wrote.

The lag
-------
Each process checks the standby at most every ``ESANTE_REPLICA_CHECK_SECONDS`` when it last
answered (``ESANTE_REPLICA_RETRY_SECONDS`` when it did not, so a dead standby costs one connection
attempt, bounded by ``ESANTE_REPLICA_CONNECT_TIMEOUT``, per retry period and process): first the
primary's ``pg_current_wal_lsn()`` P, then the standby's ``pg_is_in_recovery()``,
``pg_last_wal_replay_lsn()`` R and the age of ``pg_last_xact_replay_timestamp()``. R >= P: the
standby holds everything committed before the check, lag 0. Otherwise the lag is the time since
the last transaction it replayed was committed on the primary — an over-estimate when the primary
was idle before its last write (then the standby is briefly thought late and the primary reads
instead), never an under-estimate (with the hosts' clocks in step: NTP). Comparing with the
primary's own position, not the standby's received position, also catches a standby whose
streaming broke: it receives nothing, so it would look caught up to itself.
"""

import contextvars
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections
from django.db import Error as DatabaseError
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from prometheus_client import Counter

logger = logging.getLogger("esante.replica")

# ``read``: the name of a ``lag_tolerant`` read (patient_search, record_documents, patient_journal).
REPLICA_READS = Counter(
    "esante_replica_reads_total",
    "Lag-tolerant reads, by read and by the database that served them (replica, primary).",
    ["read", "database"],
)
REPLICA_FALLBACKS = Counter(
    "esante_replica_fallback_total",
    "Lag-tolerant reads sent to the primary because the standby was down, lagging, not a standby "
    "or failed the read (reason: down, lag, not_standby, error).",
    ["read", "reason"],
)

REPLICA = "replica"
T = TypeVar("T")

#: The session key holding the mark of the session's last write: ``{"lsn": "0/16B3748", "at": T}``.
PIN_SESSION_KEY = "_replica_pin"

#: Why a ``lag_tolerant`` read went to the primary although the standby is in use: counted as a
#: fallback. The other reasons (no standby configured, a transaction, a session's own write) are
#: the design working, not a fallback.
FALLBACK_REASONS = ("down", "lag", "not_standby", "error")


# --- WAL positions -------------------------------------------------------------------------------


def parse_lsn(text: str) -> int:
    """A PostgreSQL WAL position (``16/B374D848``) as an integer, to compare."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def format_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


# --- which statements write ----------------------------------------------------------------------

_trace_tables: set[str] = {"django_session", "audit_auditevent", "audit_auditchainhead"}
_WRITE = re.compile(r'\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)"?', re.IGNORECASE)
_NOT_A_WRITE = re.compile(
    r"\s*(?:SELECT|SAVEPOINT|RELEASE|ROLLBACK|BEGIN|COMMIT|SET|SHOW|EXPLAIN|VALUES)\b", re.IGNORECASE
)


def register_trace_tables(*models: type[Model]) -> None:
    """Tables whose rows only trace reads (an app's ``ready``): writing them does not make the
    session read the primary. Their rows are never read by a ``lag_tolerant`` read a session
    would expect to see its own writes in."""
    _trace_tables.update(model._meta.db_table for model in models)


def trace_tables() -> frozenset[str]:
    return frozenset(_trace_tables)


def statement_writes(sql: object) -> bool:
    """True when the statement may change data other than a trace: deny by default, so a
    statement not known to be a read (a writing ``WITH``, ``COPY``, ``LOCK``) counts as a write."""
    text = str(sql)
    found = _WRITE.match(text)
    if found is not None:
        return found.group(1).lower() not in _trace_tables
    return _NOT_A_WRITE.match(text) is None


# --- the state of one request ----------------------------------------------------------------------


@dataclass
class RequestState:
    """What the router knows of the request it serves: the session's pin (the primary's WAL
    position at its last write, while the standby has not been seen past it) and whether this
    request wrote."""

    pin_lsn: int | None = None
    wrote: bool = False
    released: bool = False


_request: contextvars.ContextVar[RequestState | None] = contextvars.ContextVar(
    "replica_request", default=None
)
# The alias a ``lag_tolerant`` read in progress was given ("replica" or "default"); None outside one.
_target: contextvars.ContextVar[str | None] = contextvars.ContextVar("replica_target", default=None)


# --- the standby's state ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicaStatus:
    """The standby as a check saw it. ``reason`` says why it is not usable ("" when it is):
    ``down`` (no answer), ``not_standby`` (not in recovery: a promoted or misconfigured server),
    ``lag`` (beyond the setting, or unknown), ``error`` (a read failed on it since)."""

    usable: bool
    reason: str
    lag_seconds: float | None
    replay_lsn: int | None
    checked_at: float

    def describe(self) -> str:
        if self.usable:
            return f"in use, lag {self.lag_seconds or 0.0:.2f} s"
        if self.reason == "lag":
            lag = "unknown" if self.lag_seconds is None else f"{self.lag_seconds:.2f} s"
            return f"lags beyond {settings.ESANTE_REPLICA_MAX_LAG_SECONDS:g} s (lag {lag})"
        return {
            "down": "does not answer",
            "not_standby": "is not a hot standby (not in recovery)",
            "error": "failed a read",
        }.get(self.reason, self.reason)


def _primary_lsn() -> int:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()::text")
        return parse_lsn(cursor.fetchone()[0])


def _close_replica() -> None:
    try:
        connections[REPLICA].close()
    except DatabaseError:
        logger.debug("replica: closing the standby's broken connection failed", exc_info=True)


def measure() -> ReplicaStatus:
    """Checks the standby now (two queries: the primary's position, then the standby's)."""
    now = time.monotonic()
    try:
        primary = _primary_lsn()
    except DatabaseError:
        logger.exception("replica: the primary's WAL position could not be read")
        return ReplicaStatus(False, "error", None, None, now)
    try:
        with connections[REPLICA].cursor() as cursor:
            cursor.execute(
                "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
                "EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8"
            )
            in_recovery, replay_text, age = cursor.fetchone()
    except DatabaseError as error:
        logger.debug("replica: the standby does not answer (%s)", type(error).__name__)
        _close_replica()
        return ReplicaStatus(False, "down", None, None, now)
    if not in_recovery or replay_text is None:
        return ReplicaStatus(False, "not_standby", None, None, now)
    replay = parse_lsn(replay_text)
    if replay >= primary:
        lag: float | None = 0.0
    else:
        lag = None if age is None else max(0.0, float(age))
    usable = lag is not None and lag <= settings.ESANTE_REPLICA_MAX_LAG_SECONDS
    return ReplicaStatus(usable, "" if usable else "lag", lag, replay, now)


class ReplicaMonitor:
    """This process's last view of the standby, checked again when it is due (never by two
    threads at once: a thread that finds a check under way uses the last status)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._status: ReplicaStatus | None = None

    def cached(self) -> ReplicaStatus | None:
        return self._status

    def forget(self) -> None:
        """Drops the last status: the next read checks again (tests, after a change of settings)."""
        with self._lock:
            self._status = None

    def _due(self, status: ReplicaStatus | None) -> bool:
        if status is None:
            return True
        answered = status.usable or status.reason == "lag"
        interval = (
            settings.ESANTE_REPLICA_CHECK_SECONDS if answered else settings.ESANTE_REPLICA_RETRY_SECONDS
        )
        return time.monotonic() - status.checked_at >= interval

    def status(self) -> ReplicaStatus | None:
        """The standby's status, checked again when due; None when no check has finished yet
        and another thread is checking."""
        status = self._status
        if not self._due(status):
            return status
        if not self._lock.acquire(blocking=False):
            return status
        try:
            if self._due(self._status):
                self._record(measure())
            return self._status
        finally:
            self._lock.release()

    def check_now(self) -> ReplicaStatus:
        """Checks at once (the metrics' scrape), whatever the last check."""
        with self._lock:
            status = measure()
            self._record(status)
            return status

    def failed(self) -> None:
        """A read just failed on the standby: unusable until it is checked again (after the
        retry period)."""
        with self._lock:
            self._record(ReplicaStatus(False, "error", None, None, time.monotonic()))

    def _record(self, status: ReplicaStatus) -> None:
        previous = self._status
        self._status = status
        if previous is not None and (previous.usable, previous.reason) == (status.usable, status.reason):
            return
        if status.usable:
            logger.info("replica: the standby is %s; lag-tolerant reads go to it", status.describe())
        else:
            logger.warning("replica: the standby %s; reads fall back to the primary", status.describe())


monitor = ReplicaMonitor()


# --- deciding, then routing -------------------------------------------------------------------------


def _choose(read: str) -> tuple[str, str]:
    """Where a ``lag_tolerant`` read goes, and why it goes to the primary ("" for the standby)."""
    if not settings.ESANTE_REPLICA or read not in settings.ESANTE_REPLICA_READS:
        return DEFAULT_DB_ALIAS, "off"
    if connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return DEFAULT_DB_ALIAS, "transaction"
    state = _request.get()
    if state is not None and state.wrote:
        return DEFAULT_DB_ALIAS, "pinned"
    status = monitor.status()
    if status is None:
        return DEFAULT_DB_ALIAS, "unchecked"
    if not status.usable:
        return DEFAULT_DB_ALIAS, status.reason
    if state is not None and state.pin_lsn is not None:
        if status.replay_lsn is None or status.replay_lsn < state.pin_lsn:
            return DEFAULT_DB_ALIAS, "pinned"
        # The standby holds the session's last write: the mark is dropped when the request ends.
        state.pin_lsn, state.released = None, True
    return REPLICA, ""


def lag_tolerant(read: str, run: Callable[[], T]) -> T:
    """Runs ``run`` — a read that writes nothing and whose results are complete when it returns
    (lists, not lazy querysets) — on the standby when the design above allows it, else on the
    primary. ``read`` names it (one of ``settings.REPLICA_READS``). A failure on the standby
    runs it again on the primary; the user sees no difference."""
    alias, reason = _choose(read)
    if alias == DEFAULT_DB_ALIAS:
        if reason in FALLBACK_REASONS:
            REPLICA_FALLBACKS.labels(read=read, reason=reason).inc()
        if reason != "off":
            REPLICA_READS.labels(read=read, database="primary").inc()
        return _run_on(DEFAULT_DB_ALIAS, run)
    try:
        result = _run_on(REPLICA, run)
    except (OperationalError, InterfaceError) as error:
        # A lost connection, a query cancelled by a recovery conflict: the standby's failures.
        # A failure of the primary (in a transaction opened by ``run``) recurs below and is raised.
        logger.warning(
            "replica: the read %s failed on the standby (%s); it runs again on the primary",
            read,
            type(error).__name__,
        )
        _close_replica()
        monitor.failed()
        REPLICA_FALLBACKS.labels(read=read, reason="error").inc()
        REPLICA_READS.labels(read=read, database="primary").inc()
        return _run_on(DEFAULT_DB_ALIAS, run)
    REPLICA_READS.labels(read=read, database="replica").inc()
    return result


def _run_on(alias: str, run: Callable[[], T]) -> T:
    token = _target.set(alias)
    try:
        return run()
    finally:
        _target.reset(token)


class ReplicaRouter:
    """Django's database router: the standby for the queries of a ``lag_tolerant`` read sent
    there — except those inside a transaction opened meanwhile — and the primary for every other
    query, write and migration. It names the primary explicitly rather than leaving the choice to
    Django, which would follow an object read from the standby (its related objects, its
    ``refresh_from_db``) back to the standby outside any ``lag_tolerant`` read."""

    def db_for_read(self, model: type[Model], **hints: Any) -> str:
        if _target.get() == REPLICA and not connections[DEFAULT_DB_ALIAS].in_atomic_block:
            return REPLICA
        return DEFAULT_DB_ALIAS

    def db_for_write(self, model: type[Model], **hints: Any) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool:
        # The standby is a copy of the primary: an object read from one relates to the other's.
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return False if db == REPLICA else None


# --- the session's mark ---------------------------------------------------------------------------


class _WriteObserver:
    """Execute wrapper on the primary's connection: notes that the request wrote."""

    def __init__(self, state: RequestState) -> None:
        self.state = state

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if not self.state.wrote and statement_writes(sql):
            self.state.wrote = True
        return execute(sql, params, many, context)


def _session_pin(request: HttpRequest) -> int | None:
    session = getattr(request, "session", None)
    mark = session.get(PIN_SESSION_KEY) if session is not None else None
    if not isinstance(mark, dict):
        return None
    try:
        at, lsn = float(mark["at"]), parse_lsn(str(mark["lsn"]))
    except (KeyError, TypeError, ValueError):
        del session[PIN_SESSION_KEY]  # type: ignore[union-attr]
        return None
    if time.time() - at > settings.ESANTE_REPLICA_PIN_SECONDS:
        del session[PIN_SESSION_KEY]  # type: ignore[union-attr]
        return None
    return lsn


class ReplicaSessionMiddleware:
    """Gives the router the session's pin, notes whether the request writes, and keeps the mark
    of a write in the session (placed after ``SessionMiddleware``, which saves it). Does nothing
    without a standby."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not settings.ESANTE_REPLICA:
            return self.get_response(request)
        state = RequestState(pin_lsn=_session_pin(request))
        token = _request.set(state)
        try:
            with connections[DEFAULT_DB_ALIAS].execute_wrapper(_WriteObserver(state)):
                response = self.get_response(request)
        finally:
            _request.reset(token)
        self._keep(request, state)
        return response

    def _keep(self, request: HttpRequest, state: RequestState) -> None:
        session = getattr(request, "session", None)
        if session is None:
            return
        if state.wrote:
            # Anonymous visitors who wrote (a verification attempt) get no session for it: they
            # read nothing ``lag_tolerant``.
            if session.session_key is None and not session.modified:
                return
            try:
                lsn = _primary_lsn()
            except DatabaseError:
                logger.exception("replica: the primary's WAL position after a write could not be read")
                # Unknown position: pinned for the whole period (the standby can never pass it).
                lsn = (1 << 64) - 1
            session[PIN_SESSION_KEY] = {"lsn": format_lsn(lsn), "at": time.time()}
        elif state.released and PIN_SESSION_KEY in session:
            del session[PIN_SESSION_KEY]
