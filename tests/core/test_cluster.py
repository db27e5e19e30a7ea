"""Two app servers behind nginx on one database (SQLite and PostgreSQL): real ``esante serve``
processes, a real nginx (Debian's package) with an upstream over both, as deploy/nginx.conf has it.

A professional logs in through one app server and finishes through the other (the session is in
the database); a load of authenticated requests goes through nginx; the app server holding the
leader lock is killed (SIGKILL, its whole process group, mid-load). Then: every answer is the
right answer to its own request, idempotent requests were retried on the survivor, every answered
search is in the audit trail, the survivor takes the leader lock over, signs the heads and
sequences the public log, and ``esante verify_audit`` and ``esante verify_log`` pass.

Not marked slow: it runs in both CI passes (about 30 s each).
"""

import email
import http.client
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from esante.audit.catalogue import AuditAction
from esante.audit.models import AuditChainHead, AuditEvent
from esante.core.leader import leader_lock
from esante.tlog.models import LogState

from ..access.factories import make_patient
from ..accounts.conftest import PASSWORD, make_active

ESANTE = str(Path(sys.executable).with_name("esante"))
ROOT = Path(__file__).resolve().parents[2]
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
MATRICULE = "19800101002"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def _environment(tmp_path: Path) -> dict[str, str]:
    """The app servers' environment: the test database, the suite's keys, one heads file."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        url = f"sqlite:///{db['NAME']}"
    else:
        password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
        url = f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": url,
        "ESANTE_AUDIT_KEY_FILE": str(settings.AUDIT_SIGNING_KEY_FILE),
        "ESANTE_AUDIT_MAC_KEY_FILE": str(settings.AUDIT_MAC_KEY_FILE),
        # The audit directory the app servers share (on several hosts: a volume they all mount).
        "ESANTE_AUDIT_HEADS_FILE": str(tmp_path / "audit" / "heads.jsonl"),
        "ESANTE_AUDIT_SIGNER_STATE_FILE": str(tmp_path / "audit" / "signer-state.json"),
        "ESANTE_AUDIT_INITIAL_MAX_EVENTS": "100000",
        "ESANTE_AUDIT_ANCHOR_SECONDS": "0.5",
        "ESANTE_TLOG_SEQUENCE_SECONDS": "0.3",
        "ESANTE_LEADER_SECONDS": "0.3",
        "ESANTE_OUTBOX_DIR": str(tmp_path / "outbox"),
        "ESANTE_TRUSTED_PROXIES": "127.0.0.1",
        "ESANTE_SEARCH_RATE_LIMIT": "100000",
    }


@dataclass
class AppServer:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def metric(self, name: str) -> float | None:
        try:
            status, body = request(self.port, "GET", "/metrics", {})
        except OSError:
            return None
        if status != 200:
            return None
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                if sample.name == name:
                    return float(sample.value)
        return None

    def kill(self) -> None:
        """SIGKILL to the whole process group: the master, its workers, as if the host died."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def request(
    port: int,
    method: str,
    path: str,
    cookies: dict[str, str],
    form: dict[str, str] | None = None,
    **headers: str,
) -> tuple[int, str]:
    """One request on a connection of its own, no redirect followed; (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        all_headers = {"Host": f"127.0.0.1:{port}", **headers}
        if cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                parsed: SimpleCookie = SimpleCookie()
                parsed.load(value)
                for key, morsel in parsed.items():
                    cookies[key] = morsel.value
        return response.status, response.read().decode()
    finally:
        conn.close()


def _start(name: str, env: dict[str, str], tmp_path: Path, *options: str) -> AppServer:
    port = _free_port()
    log = tmp_path / f"serve-{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [ESANTE, "serve", "--port", str(port), "--workers", "1", "--threads", "4"]
            + ["--certificate-port", "0", "--no-jobs", *options],
            env={**env, "ESANTE_METRICS_DIR": str(tmp_path / f"metrics-{name}")},
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as one
        )
    server = AppServer(name, port, process, log)

    def healthy() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return request(port, "GET", "/healthz", {})[0] == 200
        except OSError:
            return False

    assert wait_for(healthy, timeout=60, step=0.2), log.read_text()
    return server


_NGINX = """
daemon off;
worker_processes 1;
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
    upstream esante {{
        # fail_timeout 1 s instead of deploy/nginx.conf's 10 s: the test sees nginx try again.
        server 127.0.0.1:{a} max_fails=1 fail_timeout=1s;
        server 127.0.0.1:{b} max_fails=1 fail_timeout=1s;
        {upstream}
    }}
    {proxy}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://esante;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


DEPLOYED = (ROOT / "deploy" / "nginx.conf").read_text()


def deployed(*names: str) -> str:
    """deploy/nginx.conf's own directives of these names, as written there: the test's nginx
    fails over as the deployed one does."""
    found = [
        match[1]
        for name in names
        for match in re.finditer(rf"^\s*({re.escape(name)}\s[^;]*;)", DEPLOYED, re.MULTILINE)
    ]
    assert len(found) == len(names), (names, found)
    return " ".join(found)


@dataclass
class Cluster:
    a: AppServer
    b: AppServer
    nginx_port: int
    nginx_dir: Path
    env: dict[str, str]
    servers: list[AppServer] = field(default_factory=list)


@pytest.fixture
def cluster(committed_db: None, tmp_path: Path) -> Iterator[Cluster]:
    if NGINX is None:
        pytest.skip("nginx is not installed (Debian package `nginx`; .ci/run installs it)")
    env = _environment(tmp_path)
    servers: list[AppServer] = []
    nginx_process = None
    try:
        a = _start("a", env, tmp_path)
        servers.append(a)
        # The first one up leads; the second starts once it does, so the roles are known.
        assert wait_for(lambda: a.metric("esante_leader") == 1.0, timeout=20), a.log.read_text()
        b = _start("b", env, tmp_path)
        servers.append(b)
        directory = tmp_path / "nginx"
        directory.mkdir()
        port = _free_port()
        config = directory / "nginx.conf"
        user = "user root;" if os.geteuid() == 0 else ""
        config.write_text(
            _NGINX.format(
                user=user,
                dir=directory,
                a=a.port,
                b=b.port,
                port=port,
                upstream=deployed("keepalive", "keepalive_timeout"),
                proxy=deployed("proxy_next_upstream", "proxy_next_upstream_tries", "proxy_connect_timeout"),
            )
        )
        nginx_process = subprocess.Popen(
            [NGINX, "-p", str(directory), "-c", str(config), "-e", str(directory / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

        def listening() -> bool:
            assert nginx_process is not None and nginx_process.poll() is None, "nginx did not start"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return True
            except OSError:
                return False

        assert wait_for(listening, timeout=10)
        yield Cluster(a, b, port, directory, env, servers)
    finally:
        if nginx_process is not None:
            nginx_process.terminate()
            nginx_process.wait(timeout=10)
        for server in servers:
            server.stop()


def _csrf(page: str) -> str:
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert found, page[:500]
    return found[1]


def _mailed_code(outbox: Path) -> str:
    latest = max(outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    message = email.message_from_bytes(latest.read_bytes())
    parts = [p for p in message.walk() if p.get_content_type() == "text/plain"]
    text = parts[0].get_payload(decode=True).decode()  # type: ignore[union-attr]
    found = re.search(r"\b(\d{6})\b", text)
    assert found
    return found[1]


def _token(n: int) -> str:
    """A first name of letters only, unique to request ``n``: "Zq" + n in base 26."""
    letters = ""
    while True:
        n, rest = divmod(n, 26)
        letters = chr(ord("a") + rest) + letters
        if not n:
            return "Zq" + letters


@dataclass
class Outcome:
    n: int
    method: str
    status: int  # 0: no answer at all (the connection to nginx failed)
    correct: bool
    token: str = ""
    after_kill: bool = False


def test_two_app_servers_behind_nginx_survive_the_loss_of_the_leader(
    cluster: Cluster, tmp_path: Path
) -> None:
    make_active(matricule=MATRICULE, last_name="Schmit", first_name="Luc", email="luc.schmit@pharma.lu")
    patient = make_patient(birth_name="Muller", first_names="Anne")
    a, b = cluster.a, cluster.b

    # Login: the password on A, the one-time code on B; the session then works on A and on B.
    cookies: dict[str, str] = {}
    status, page = request(a.port, "GET", "/professionnel/connexion/", cookies)
    assert status == 200
    status, _ = request(
        a.port,
        "POST",
        "/professionnel/connexion/",
        cookies,
        {"csrfmiddlewaretoken": _csrf(page), "matricule": MATRICULE, "password": PASSWORD},
    )
    assert status == 302
    status, page = request(b.port, "GET", "/professionnel/connexion/code/", cookies)
    assert status == 200, "the pending login (in the session) is known on B"
    code = _mailed_code(tmp_path / "outbox")
    status, _ = request(
        b.port,
        "POST",
        "/professionnel/connexion/code/",
        cookies,
        {"csrfmiddlewaretoken": _csrf(page), "code": code},
    )
    assert status == 302
    for server in (a, b):
        status, page = request(server.port, "GET", "/edocuments/", cookies)
        assert status == 200 and "Mes patients" in page, server.name
    csrf = cookies["csrftoken"]

    # The load: 4 clients through nginx, GET pages and POSTed searches, each search with a first
    # name of its own (so its answer and its audit event can be told from every other's).
    counter = itertools.count()
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    killed = threading.Event()
    stop = threading.Event()

    def one(n: int) -> Outcome:
        after = killed.is_set()
        if n % 3 == 0:
            try:
                status, page = request(cluster.nginx_port, "GET", "/edocuments/", dict(cookies))
            except OSError:
                return Outcome(n, "GET", 0, False, after_kill=after)
            return Outcome(n, "GET", status, status == 200 and "Mes patients" in page, after_kill=after)
        first_name = "Anne" if n % 3 == 1 else _token(n)
        form = {"csrfmiddlewaretoken": csrf, "name": "Muller", "first_name": first_name, "matricule": ""}
        try:
            status, page = request(
                cluster.nginx_port,
                "POST",
                "/edocuments/recherche/",
                dict(cookies),
                form,
                **{"HX-Request": "true"},
            )
        except OSError:
            return Outcome(n, "POST", 0, False, first_name, after)
        echoed = f'name="first_name" value="{first_name}"' in page
        found = str(patient.public_id) in page
        correct = status == 200 and echoed and (found if first_name == "Anne" else not found)
        return Outcome(n, "POST", status, correct, first_name, after)

    def client() -> None:
        while not stop.is_set():
            outcome = one(next(counter))
            with lock:
                outcomes.append(outcome)

    clients = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    for thread in clients:
        thread.start()
    try:
        assert wait_for(lambda: len(outcomes) >= 60, timeout=60)
        assert (a.metric("esante_leader"), b.metric("esante_leader")) == (1.0, 0.0)  # one leader
        t0 = time.monotonic()
        a.kill()  # the leader, mid-load
        killed.set()
        answered_at_kill = len(outcomes)
        # Past nginx's fail_timeout (1 s here) a few times: it tries the dead server again and again.
        assert wait_for(
            lambda: len(outcomes) >= answered_at_kill + 90 and time.monotonic() - t0 > 2.5, timeout=60
        )
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=60)

    # Every answer is the right one; idempotent requests never failed (nginx retried them on B);
    # a POST may fail only if it was in flight at A when A died (nginx does not resend a POST).
    wrong = [o for o in outcomes if o.status == 200 and not o.correct]
    assert not wrong, wrong[:5]
    failed = [o for o in outcomes if o.status != 200]
    assert all(o.method == "POST" and o.status == 502 for o in failed), failed
    assert len(failed) <= len(clients), failed
    after = [o for o in outcomes if o.after_kill]
    assert sum(1 for o in after if o.method == "GET" and o.status == 200) >= 20

    # nginx kept meeting the dead server (connection refused, nothing sent) and passed those
    # requests to the other: none of them failed. A GET now and then, past its fail_timeout (1 s
    # here), until one of them is seen doing so.
    def refused_on_a() -> list[str]:
        return re.findall(
            rf"connect\(\) failed \(111: Connection refused\) while connecting to upstream, .*"
            rf'request: "(GET|POST) [^"]*", upstream: "http://127.0.0.1:{a.port}/',
            (cluster.nginx_dir / "error.log").read_text(),
        )

    for _ in range(10):
        if "GET" in refused_on_a():
            break
        time.sleep(1.1)
        status, page = request(cluster.nginx_port, "GET", "/edocuments/", dict(cookies))
        assert status == 200 and "Mes patients" in page
    assert "GET" in refused_on_a(), (cluster.nginx_dir / "error.log").read_text()[-2000:]

    # No audit event lost: each answered search is in the trail exactly once; an unanswered one
    # at most once (its transaction committed, or not, when A died).
    searched: dict[str, int] = {}
    for details in AuditEvent.objects.filter(action=AuditAction.PATIENT_SEARCH).values_list(
        "details", flat=True
    ):
        token = (details if isinstance(details, dict) else json.loads(details))["criteria"]["first_name"]
        searched[token] = searched.get(token, 0) + 1
    for o in outcomes:
        if o.method == "POST" and o.token != "Anne":
            in_trail = searched.get(o.token.upper(), 0)  # the trail holds the folded criteria
            assert in_trail == 1 if o.status == 200 else in_trail <= 1, (o, in_trail)
    answered_anne = sum(1 for o in outcomes if o.token == "Anne" and o.status == 200)
    assert answered_anne <= searched.get("ANNE", 0) <= sum(1 for o in outcomes if o.token == "Anne")

    # The survivor leads: it signs every event and sequences them all into the public log.
    assert wait_for(lambda: b.metric("esante_leader") == 1.0, timeout=20), b.log.read_text()
    head = AuditChainHead.objects.get(pk=1).sequence
    assert wait_for(lambda: b.metric("esante_audit_signed_sequence") == head, timeout=20)
    assert wait_for(
        lambda: (LogState.objects.filter(pk=1).values_list("size", flat=True).first() or 0) == head,
        timeout=20,
    )
    b_log = b.log.read_text()
    assert "now leads" in b_log and "REFUSED" not in b_log and "sequencing failed" not in b_log
    assert "now leads" in a.log.read_text()

    for command in ("verify_audit", "verify_log"):
        result = subprocess.run(
            [ESANTE, command], env=cluster.env, cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, (command, result.stdout, result.stderr)


def test_an_app_server_with_no_leader_never_takes_the_lock(committed_db: None, tmp_path: Path) -> None:
    # Its own home and runtime directories: gunicorn's control socket (one path per user, shared
    # by every app server of the host) must not be opened there.
    home, runtime = tmp_path / "home", tmp_path / "run"
    home.mkdir()
    runtime.mkdir()
    env = {**_environment(tmp_path), "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    server = _start("solo", env, tmp_path, "--no-leader")
    try:
        time.sleep(1.5)  # five times ESANTE_LEADER_SECONDS
        assert server.metric("esante_leader") == 0.0
        assert list(home.iterdir()) == [] and list(runtime.iterdir()) == []
        lock = leader_lock()
        assert lock.try_acquire()  # nobody holds it, though an app server runs alone
        lock.release()
    finally:
        server.stop()
    assert "now leads" not in server.log.read_text()
