"""The platform served over real HTTP for the verifiers (Go's, and ours) to fetch from."""

import threading
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from django.core.wsgi import get_wsgi_application
from django.db import connections


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def _closing_connections(app: Any) -> Any:
    """Each request's database connections closed when it ends, in the serving thread: with
    persistent connections (CONN_MAX_AGE) they would outlive the server and keep PostgreSQL from
    dropping the test database."""

    def wrapped(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            response = app(environ, start_response)
            try:
                return [b"".join(response)]
            finally:
                response.close()
        finally:
            connections.close_all()

    return wrapped


@pytest.fixture
def journal_url(committed_db: None) -> Iterator[str]:
    """The platform served over real HTTP, on the committed test database."""
    app = _closing_connections(get_wsgi_application())
    server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/journal"
    server.shutdown()
    server.server_close()
