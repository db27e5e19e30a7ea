"""/metrics and /readyz of a real ``esante serve`` with two gunicorn workers."""

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

ESANTE = str(Path(sys.executable).with_name("esante"))

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """A fresh SQLite platform (its own data dir, none of the suite's settings), served by two
    workers; the audit signer and the job consumer as ``esante serve`` runs them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESANTE_", "DJANGO_", "DATABASE_"))}
    env.update(ESANTE_DATA_DIR=str(tmp_path), ESANTE_DEMO="1", PYTHONUNBUFFERED="1")
    subprocess.run([ESANTE, "migrate", "-v", "0"], env=env, check=True, timeout=180)
    port = _free_port()
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [ESANTE, "serve", "--port", str(port), "--workers", "2", "--certificate-port", "0"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if _get(f"{url}/healthz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def _landing_count(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "esante_http_request_duration_seconds_count" and sample.labels == {
                "view": "core:landing",
                "status": "2xx",
            }:
                return float(sample.value)
    return 0.0


def test_two_workers_report_the_same_totals(served: str, tmp_path: Path) -> None:
    status, body = _get(f"{served}/readyz")
    assert status == 200, body
    for _ in range(40):  # one connection each: gunicorn spreads them over its workers
        assert _get(f"{served}/")[0] == 200
    # Whichever worker answers the scrape, it adds up both workers' counts.
    counts = []
    for _ in range(8):
        status, text = _get(f"{served}/metrics")
        assert status == 200
        counts.append(_landing_count(text))
        assert "esante_audit_unsigned_events" in text and "esante_job_queue_pending" in text
    assert counts == [40.0] * 8
    assert any((tmp_path / "metrics").glob("histogram_*.db"))
