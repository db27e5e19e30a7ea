"""The job queue: work that follows a commit and need not keep anyone waiting (Huey).

``ESANTE_QUEUE`` chooses where jobs wait:

- ``sqlite`` (the embedded default): a SQLite file in the data dir (``ESANTE_QUEUE_FILE``), no
  other service; ``esante serve`` and ``esante demo`` start a consumer next to the portal;
- ``redis`` (production, several app servers): Redis at ``ESANTE_REDIS_URL``; run
  ``esante run_jobs`` on one or more hosts;
- ``immediate``: each job runs at once, in the caller, as if there were no queue (the tests'
  mode, where they drive the queue deterministically, and the synchronous baseline of the
  benchmarks).

Jobs are plain functions of the apps' ``jobs`` modules, registered with ``@job()``; a job is
queued with ``after_commit(job, ...)``, which hands it to the queue once the caller's
transaction commits (never for a transaction rolled back). Queuing never fails the caller: when
the queue is unreachable the failure is logged and the app's sweep (for dispensations,
``esante dispensation_follow_up``, also run every 5 minutes by the consumer) does the work later.
"""

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from django.conf import settings
from django.db import close_old_connections, connections, transaction
from django.utils.module_loading import autodiscover_modules
from huey import Huey
from huey.api import TaskWrapper
from huey.storage import MemoryStorage, RedisStorage, SqliteStorage

logger = logging.getLogger(__name__)

SQLITE, REDIS, IMMEDIATE = "sqlite", "redis", "immediate"

F = TypeVar("F", bound=Callable[..., Any])


class QueueFileStorage(SqliteStorage):  # type: ignore[misc]
    """Huey's SQLite storage (WAL) committing without an fsync (``synchronous=NORMAL``): queuing a
    job costs microseconds instead of a disk flush while the pharmacist waits (5 ms and more on a
    busy disk). The WAL keeps the file consistent; a job committed just before the machine itself
    crashed may be lost, as a job is when the queue is unreachable: the app's sweep does its
    work (a crash of a process loses nothing)."""

    def _create_connection(self) -> Any:
        conn = super()._create_connection()
        conn.execute("pragma synchronous=NORMAL")
        return conn


class JobQueue(Huey):  # type: ignore[misc]
    """Huey, bound to the storage the settings name; ``use`` re-binds it (tests, benchmarks)."""

    storage_class = MemoryStorage

    def use(self, mode: str, *, path: Path | str | None = None, url: str = "", name: str = "") -> None:
        """Binds the queue to ``mode``'s storage: a SQLite file at ``path``, Redis at ``url``, or
        the immediate mode. Jobs already waiting in the previous storage stay there."""
        if mode not in (SQLITE, REDIS, IMMEDIATE):
            raise ValueError(f"unknown queue mode {mode!r}")
        if name:
            self.name: str = name
        self._immediate = mode == IMMEDIATE  # Huey's own flag; its setter would rebuild the storage
        if mode == SQLITE:
            self.storage_class, self.storage_kwargs = QueueFileStorage, {"filename": str(path)}
        elif mode == REDIS:
            self.storage_class, self.storage_kwargs = RedisStorage, {"url": url}
        else:
            self.storage_class, self.storage_kwargs = MemoryStorage, {}
        self.storage = self.create_storage()
        self.mode = mode

    def use_settings(self) -> None:
        """Binds the queue to what the settings say (``ESANTE_QUEUE`` and its companions)."""
        path = Path(settings.ESANTE_QUEUE_FILE)
        if settings.ESANTE_QUEUE == SQLITE:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.use(
            settings.ESANTE_QUEUE, path=path, url=settings.ESANTE_REDIS_URL, name=settings.ESANTE_QUEUE_NAME
        )


queue = JobQueue(settings.ESANTE_QUEUE_NAME, results=False, utc=True)
queue.use_settings()


@queue.on_shutdown()
def _close_connections() -> None:
    """Each worker of a stopping consumer closes its own database connections (persistent ones
    included): nothing is left holding the database."""
    connections.close_all()


def _fresh_connections(function: F) -> Callable[..., Any]:
    """In a consumer each run starts and ends with fresh database connections, as Django's
    request cycle does (a connection left broken by the previous job is not reused)."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        if not queue.immediate:
            close_old_connections()
        try:
            return function(*args, **kwargs)
        finally:
            if not queue.immediate:
                close_old_connections()

    return run


def job(**options: Any) -> Callable[[F], TaskWrapper]:
    """Registers a job: ``options`` are Huey's task options (``retries``, ``retry_delay``...)."""

    def decorator(function: F) -> TaskWrapper:
        return queue.task(**options)(_fresh_connections(function))

    return decorator


def periodic_job(schedule: Callable[..., bool], **options: Any) -> Callable[[F], TaskWrapper]:
    """Registers a job the consumer runs by itself on ``schedule`` (a ``huey.crontab``)."""

    def decorator(function: F) -> TaskWrapper:
        return queue.periodic_task(schedule, **options)(_fresh_connections(function))

    return decorator


def enqueue(task: TaskWrapper, *args: Any, **kwargs: Any) -> bool:
    """Queues ``task`` now; False (logged) when the queue could not take it."""
    try:
        task(*args, **kwargs)
    except Exception:
        logger.exception("job %s not queued; the sweep will do its work", task.name)
        return False
    return True


def after_commit(task: TaskWrapper, *args: Any, **kwargs: Any) -> None:
    """Queues ``task`` once the current transaction commits (at once outside a transaction)."""
    transaction.on_commit(functools.partial(enqueue, task, *args, **kwargs))


def discover() -> None:
    """Imports every app's ``jobs`` module, so that a consumer knows all the jobs."""
    autodiscover_modules("jobs")
