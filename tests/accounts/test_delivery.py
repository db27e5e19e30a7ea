"""Code delivery backends: files under OUTBOX_DIR, Django e-mail, and a real HTTP SMS gateway."""

import email
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.core.mail import get_connection, send_mail

from esante.accounts.delivery import DeliveryError, FileSmsBackend, HttpSmsBackend, code_deliver


def test_file_email_backend_writes_an_eml(settings: Any) -> None:
    connection = get_connection("esante.accounts.delivery.FileEmailBackend")
    send_mail(
        "Sujet",
        "Corps du message : 123456",
        "no-reply@esante.lu",
        ["anne@pharmacie.lu"],
        connection=connection,
    )
    files = list(Path(settings.OUTBOX_DIR).glob("*.eml"))
    assert len(files) == 1
    message = email.message_from_bytes(files[0].read_bytes())
    assert message["To"] == "anne@pharmacie.lu"
    assert "123456" in message.get_payload(decode=True).decode()


def test_file_sms_backend_writes_json(settings: Any) -> None:
    FileSmsBackend().send(to="+352621111222", text="code 123456")
    (file,) = Path(settings.OUTBOX_DIR).glob("*.json")
    assert json.loads(file.read_text()) == {"to": "+352621111222", "text": "code 123456"}


def test_outbox_is_readable_by_the_platform_user_only(settings: Any) -> None:
    outbox = Path(settings.OUTBOX_DIR)
    outbox.mkdir(mode=0o755, parents=True)
    outbox.chmod(0o755)  # made earlier with wider rights: narrowed at the next message
    FileSmsBackend().send(to="+352621111222", text="code 123456")
    connection = get_connection("esante.accounts.delivery.FileEmailBackend")
    send_mail("Sujet", "code 654321", "no-reply@esante.lu", ["anne@pharmacie.lu"], connection=connection)
    assert outbox.stat().st_mode & 0o777 == 0o700
    files = list(outbox.iterdir())
    assert len(files) == 2 and {f.stat().st_mode & 0o777 for f in files} == {0o600}


def test_code_deliver_by_sms_uses_the_configured_backend(settings: Any) -> None:
    code_deliver(channel="sms", address="+352621111222", code="654321")
    (file,) = Path(settings.OUTBOX_DIR).glob("*.json")
    assert "654321" in json.loads(file.read_text())["text"]


class _Gateway(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []
    status = 202

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers["Content-Length"])
        type(self).received.append(
            {"body": json.loads(self.rfile.read(length)), "auth": self.headers.get("Authorization")}
        )
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def gateway(settings: Any) -> Iterator[type[_Gateway]]:
    _Gateway.received = []
    _Gateway.status = 202
    server = HTTPServer(("127.0.0.1", 0), _Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.ESANTE_SMS_BACKEND = "esante.accounts.delivery.HttpSmsBackend"
    settings.ESANTE_SMS_GATEWAY_URL = f"http://127.0.0.1:{server.server_port}/sms"
    settings.ESANTE_SMS_GATEWAY_TOKEN = "gateway-token"
    yield _Gateway
    server.shutdown()
    server.server_close()


def test_http_sms_backend_posts_to_the_gateway(gateway: type[_Gateway]) -> None:
    code_deliver(channel="sms", address="+352621111222", code="112233")
    (request,) = gateway.received
    assert request["body"]["to"] == "+352621111222" and "112233" in request["body"]["text"]
    assert request["auth"] == "Bearer gateway-token"


def test_http_sms_backend_reports_a_refusal(gateway: type[_Gateway]) -> None:
    gateway.status = 500
    with pytest.raises(DeliveryError):
        HttpSmsBackend().send(to="+352621111222", text="x")


def test_http_sms_backend_reports_an_unreachable_gateway(settings: Any) -> None:
    settings.ESANTE_SMS_GATEWAY_URL = "http://127.0.0.1:9/sms"
    with pytest.raises(DeliveryError):
        HttpSmsBackend().send(to="+352621111222", text="x")
