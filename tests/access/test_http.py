"""The client address the access views trace: the one shared implementation (esante.core.http)."""

from typing import Any

import pytest
from django.test import RequestFactory

from esante.access import http as access_http
from esante.core import http as core_http


def request(remote: str, forwarded: str | None = None) -> Any:
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


def test_access_uses_the_shared_implementation() -> None:
    assert access_http.client_address is core_http.client_address


@pytest.mark.parametrize(
    ("remote", "forwarded", "expected"),
    [
        ("192.0.2.1", None, "192.0.2.1"),
        ("192.0.2.1", "198.51.100.7", "192.0.2.1"),  # not a trusted proxy: the header is ignored
        ("10.0.0.1", "203.0.113.5, 198.51.100.7", "198.51.100.7"),  # the hop the proxy saw
        ("10.0.0.1", "198.51.100.7, ", "198.51.100.7"),  # an empty last hop is skipped
        ("10.0.0.1", "", "10.0.0.1"),
        ("10.0.0.1", "not-an-address", None),
        ("", None, None),
    ],
)
def test_client_address(settings: Any, remote: str, forwarded: str | None, expected: str | None) -> None:
    settings.ESANTE_TRUSTED_PROXIES = ["10.0.0.1"]
    assert core_http.client_address(request(remote, forwarded)) == expected
