"""Benchmark: the portal's pages under load, over HTTP, with a load generator (wrk) against
``esante serve``, each page against a bare authenticated page measured in the same run.

Starts ``esante serve`` as an operator runs it (production settings: no ``ESANTE_DEBUG``, an
explicit ``ESANTE_SECRET_KEY``; ``ESANTE_HTTPS=0`` since it listens on loopback without TLS;
``ESANTE_ALLOW_FILE_OUTBOX=1`` since no message is sent; ``esante serve``'s default of 2 workers
of 4 threads; ``--no-jobs --no-leader``: no job consumer and no audit signer competing for the CPU;
audit chaining as configured, ``inline`` by default), on a free local port, over a fresh database
holding:

- ``--patients`` patients (the search's index), a patient with ``--documents`` documents, and a
  pool of active pharmacists, each with a care access to that patient;
- a patient with ``--events`` audit events in their journal (and as many of another patient's).

The sessions are real sessions of the platform, created server-side with Django's session engine
and ``django.contrib.auth.login`` (what the login views call once the password and code or the
certificate are checked: those steps are not what is measured); the CSRF cookie and token come
from a GET of the search form over HTTP, as a browser gets them.

Then, in ``--rounds`` rounds, ``wrk -t2 -c4 -d<--seconds>`` against each page in turn (a Lua script
rotates the sessions, the search criteria and the CSRF token, and counts every answer whose status
is not the expected one or whose body lacks the page's marker: any such answer, a 302 to the login
page or a 429 of the search rate limit, fails the benchmark):

- ``GET /healthz``: the raw HTTP floor of the stack (one ``SELECT 1``, no session);
- the bare authenticated professional page: ``GET /edocuments/recherche/`` (the search form: the
  session, the user and the professional are loaded, no other query; the cheapest page behind
  ``professional_required``, and the page the search results are rendered into);
- the search, ``POST /edocuments/recherche/``, by matricule and by name + first name (goals:
  ≤ 1.5× and ≤ 2× the bare page);
- the record page, « Vue documentaire », of the patient with 1,000 documents (goal: ≤ 2×);
- the bare patient page ``GET /patient/`` with the patient's session (the floor of
  ``patient_journal.py``: the patients' portal home, which reads the session and the user and
  nothing else; no page behind ``patient_required`` is lighter) and the journal's first page
  ``GET /patient/journal/`` (goal: ≤ 2×).

The search rate limit (``ESANTE_SEARCH_RATE_LIMIT`` per ``ESANTE_SEARCH_RATE_WINDOW_SECONDS``, 60 per
600 s by default) stays as configured: the searches are spread over enough professionals (sized from
a first measurement of the bare page) that none of them reaches it, as on a platform where many
professionals search at once; one professional searching from 4 connections would rather measure
the lock that makes the limit hold (``access.services._search_counted``).

The ratio of a page is the bare page's requests/s over the page's, in the same round (with a
closed-loop load it is also the ratio of their latencies); the median over the rounds is printed,
with wrk's p50 / p99 latency and the server's CPU time per request (gunicorn's workers, and on
PostgreSQL the database's backends serving them), which a loaded machine changes least. Each page
gives one line of ``benchmarks/run.py``'s row protocol (``ROW | operation=… | figure=… | floor=… |
ratio=… | goal=…``).

Needs ``wrk`` (``apt-get install wrk``).

    python benchmarks/pages_http.py
    python benchmarks/pages_http.py --database postgres://postgres@127.0.0.1:5432/esante_bench
"""

import argparse
import datetime
import http.client
import json
import math
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from _setup import fresh_django  # noqa: E402

ESANTE = Path(sys.executable).with_name("esante")
NAMES = ["Schmit", "Muller", "Weber", "Wagner", "Hoffmann", "Da Silva", "Dos Santos", "Pereira",
         "Gonçalves", "Ferreira", "Dupont", "Martin", "Rossi", "Müller", "Schneider", "Klein", "Thill",
         "Kremer", "Reuter"]  # fmt: skip
GIVEN = ["Léa", "Emma", "Luc", "Jean", "Ana", "João", "Marie", "Paul", "Sofia", "Tom", "Inês", "Max"]
TYPES = [("57833-6", "prescription"), ("11502-2", "laboratory"), ("18842-5", "report"),
         ("11488-4", "report"), ("18748-4", "imaging"), ("11369-6", "vaccination")]  # fmt: skip
ACTIONS = ["record.open", "record.view", "document.read", "access.grant", "prescription.dispense"]
#: wrk's load: 2 threads, 4 connections (the server has 2 workers of 4 threads, on 2 cores).
THREADS, CONNECTIONS = 2, 4

# The Lua script of one page: rotates the sessions and the bodies, counts unexpected answers.
# ``id`` and ``nthreads`` are set in each thread's state by ``setup`` before ``init``.
LUA = r"""
local sessions = %(sessions)s
local bodies = %(bodies)s
local method, path, expected, marker = %(method)s, %(path)s, %(expected)d, %(marker)s
bad, nomark, last_bad = 0, 0, 0
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  thread:set("nthreads", %(nthreads)d)
  table.insert(threads, thread)
end
function init(args)
  n = id
end
function request()
  n = n + nthreads
  local session = sessions[(n %% #sessions) + 1]
  local headers = {Cookie = session[1]}
  local body = nil
  if #bodies > 0 then
    body = bodies[(n %% #bodies) + 1] .. "&csrfmiddlewaretoken=" .. session[2]
    headers["Content-Type"] = "application/x-www-form-urlencoded"
  end
  return wrk.format(method, path, headers, body)
end
function response(status, headers, body)
  if status ~= expected then
    bad = bad + 1
    last_bad = status
  elseif marker ~= "" and not string.find(body, marker, 1, true) then
    nomark = nomark + 1
  end
end
function done(summary, latency, requests)
  local b, m, last = 0, 0, 0
  for _, thread in ipairs(threads) do
    b = b + thread:get("bad")
    m = m + thread:get("nomark")
    if thread:get("last_bad") ~= 0 then last = thread:get("last_bad") end
  end
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%%d duration_us=%%d p50_us=%%d p99_us=%%d bad=%%d nomark=%%d last_bad=%%d"
    .. " socket_errors=%%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), b, m, last,
    e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass
class Page:
    key: str
    name: str
    path: str
    marker: str
    floor: str = ""  # the key of the page it is compared with
    goal: str = ""
    method: str = "GET"
    bodies: list[str] = field(default_factory=list)
    patient: bool = False  # run with the patient's sessions, else the professionals'


@dataclass
class Run:
    rps: float
    p50: float  # ms
    p99: float  # ms
    cpu: float  # server CPU ms per request
    requests: int


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


@contextmanager
def served(work: Path, environment: dict[str, str]) -> Iterator[tuple[str, int]]:
    """``esante serve`` (2 workers, 4 threads) on a free port; its address and its pid."""
    port = free_port()
    log = (work / "server.log").open("wb")
    process = subprocess.Popen(  # noqa: S603
        [str(ESANTE), "serve", "--port", str(port), "--workers", "2", "--threads", "4", "--no-jobs",
         "--no-leader"],
        env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"esante serve exited: {(work / 'server.log').read_text()[-2000:]}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("esante serve did not answer /healthz within 60 s")
            time.sleep(0.3)
        while len(children(process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        yield f"127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(timeout=10)
        log.close()


def lua_string(value: str) -> str:
    return json.dumps(value)  # ASCII (URL-encoded bodies, cookies): a valid Lua string literal


def load(args: argparse.Namespace) -> dict[str, object]:
    """The data set; returns what the pages need (ids, search samples, the users)."""
    import random

    from django.db import connection
    from django.utils import timezone

    from esante.accounts.models import User
    from esante.audit.models import AuditChainHead, AuditEvent
    from esante.documents.models import Document
    from esante.espace.models import PatientAccount
    from esante.patients.folding import fold
    from esante.patients.matricule import make_patient_matricule
    from esante.patients.models import Patient

    rng = random.Random(7)
    started = time.perf_counter()
    seen: set[str] = set()
    batch: list[Patient] = []
    samples: list[tuple[str, str, str]] = []
    created = 0
    while created < args.patients:
        birth = datetime.date(1920, 1, 1) + datetime.timedelta(days=rng.randrange(36_000))
        matricule = make_patient_matricule(birth, rng.randrange(1000))
        if matricule in seen:
            continue
        seen.add(matricule)
        name = rng.choice(NAMES) + ("" if rng.random() < 0.7 else f"-{rng.choice(NAMES)}")
        given = rng.choice(GIVEN)
        batch.append(
            Patient(
                matricule=matricule, birth_name=name, first_names=given, birth_date=birth,
                sex=rng.choice("FM"), platform_identifier=f"{created:010d}", birth_name_folded=fold(name),
                first_names_folded=fold(given),
            )
        )  # fmt: skip
        created += 1
        if len(samples) < 500 and rng.random() < 0.02:
            samples.append((matricule, name, given))
        if len(batch) == 5000:
            Patient.objects.bulk_create(batch)
            batch = []
    Patient.objects.bulk_create(batch)
    now = timezone.now()
    record_patient = Patient.objects.create(
        matricule="1904112000166", birth_name="PIG", first_names="Peppa",
        birth_date=datetime.date(1904, 11, 20), sex="F", platform_identifier="1700000151",
        birth_name_folded="PIG", first_names_folded="PEPPA",
    )  # fmt: skip
    Document.objects.bulk_create(
        Document(
            patient=record_patient, type_code=TYPES[n % len(TYPES)][0], class_code=TYPES[n % len(TYPES)][1],
            title=f"Document {n}", author_name=f"Dr Auteur {n % 17}", source_system="eServices",
            binder="general", media_type="text/plain", content="x", sha256="0" * 64, size=1,
            clinical_at=now - datetime.timedelta(hours=n),
        )
        for n in range(args.documents)
    )  # fmt: skip
    journal_patient = Patient.objects.create(
        matricule="1904112000167", birth_name="WOLF", first_names="Zoé",
        birth_date=datetime.date(1904, 11, 20), sex="F", platform_identifier="1700000152",
        birth_name_folded="WOLF", first_names_folded="ZOE",
    )  # fmt: skip
    other = Patient.objects.get(platform_identifier="0000000000")
    patient_user = User.objects.create_user(username="patient:1904112000167", password=None)
    PatientAccount.objects.create(
        user=patient_user, patient=journal_patient, state="active", email="p@example.lu"
    )
    authors = [User.objects.create_user(username=f"1970051712{n:02d}", password=None) for n in range(20)]
    # The journal's events: rows as the trail stores them (the chain is not what is measured here;
    # the server chains its own events after them, from the head set below).
    total = 2 * args.events
    events: list[AuditEvent] = []
    for sequence in range(1, total + 1):
        author = authors[sequence % len(authors)]
        events.append(
            AuditEvent(
                sequence=sequence, created_at=now - datetime.timedelta(seconds=total - sequence),
                actor_id=author.pk, actor_label=author.username, action=ACTIONS[sequence % len(ACTIONS)],
                outcome="success", patient=journal_patient if sequence % 2 else other,
                motif="Délivrance de médicaments", details={"channel": "portal"}, canonical="{}",
                prev_hash="0" * 64, hash=f"{sequence:064x}",
            )
        )  # fmt: skip
        if len(events) == 5000:
            AuditEvent.objects.bulk_create(events)
            events = []
    AuditEvent.objects.bulk_create(events)
    AuditChainHead.objects.update_or_create(pk=1, defaults={"sequence": total, "hash": f"{total:064x}"})
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        if connection.vendor == "postgresql":
            # A bulk load leaves no visibility map (no index-only scan): autovacuum gives a live
            # database one.
            cursor.execute("VACUUM ANALYZE documents_document")
            cursor.execute("VACUUM ANALYZE audit_auditevent")
    print(
        f"data: {args.patients:,} patients, {args.documents:,} documents of one, {args.events:,} journal "
        f"events of another (+{args.events:,}), loaded in {time.perf_counter() - started:.0f} s"
    )
    return {"record_patient": record_patient, "patient_user": patient_user, "samples": samples}


def professionals(count: int, start: int, record_patient: object) -> list[object]:
    """``count`` active pharmacists, each with a care access to the record patient."""
    from django.utils import timezone

    from esante.access.models import AccessGrant
    from esante.accounts.models import Professional, User

    now = timezone.now()
    made = []
    for n in range(start, start + count):
        user = User.objects.create_user(username=f"1980{n:07d}", password=None)
        professional = Professional.objects.create(
            user=user, matricule=f"1980{n:07d}", profession="pharmacist", last_name=f"Bench{n}",
            first_name="B", email=f"b{n}@example.lu", state="active", organisation="Pharmacie",
        )  # fmt: skip
        AccessGrant.objects.create(
            professional=professional, patient=record_patient, mode="care", motif="Délivrance",
            granted_at=now, expires_at=now + datetime.timedelta(days=1),
        )  # fmt: skip
        made.append(user)
    return made


def session_for(user: object, address: str, form_path: str) -> tuple[str, str]:
    """A session of ``user`` (Django's session engine and ``auth.login``, as the login views do),
    then the CSRF cookie and token from a GET of ``form_path`` over HTTP: (Cookie header, token)."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import login
    from django.http import HttpRequest

    request = HttpRequest()
    request.session = import_module(settings.SESSION_ENGINE).SessionStore()
    login(request, user, "django.contrib.auth.backends.ModelBackend")  # type: ignore[arg-type]
    request.session.save()
    cookie = f"{settings.SESSION_COOKIE_NAME}={request.session.session_key}"
    if not form_path:
        return cookie, ""
    connection = http.client.HTTPConnection(address, timeout=30)
    connection.request("GET", form_path, headers={"Cookie": cookie})
    response = connection.getresponse()
    html = response.read().decode()
    assert response.status == 200, (form_path, response.status)
    csrf = re.search(
        rf"{re.escape(settings.CSRF_COOKIE_NAME)}=([^;]+)", response.getheader("Set-Cookie") or ""
    )
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert csrf and token, "no CSRF cookie or token on the search form"
    return f"{cookie}; {settings.CSRF_COOKIE_NAME}={csrf.group(1)}", token.group(1)


def check_once(address: str, page: Page, session: tuple[str, str], work: Path) -> None:
    """One request of the page, outside wrk: its status and marker (its body kept for reading)."""
    connection = http.client.HTTPConnection(address, timeout=30)
    headers = {"Cookie": session[0]}
    body = None
    if page.bodies:
        body = f"{page.bodies[0]}&csrfmiddlewaretoken={session[1]}"
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    connection.request(page.method, page.path, body=body, headers=headers)
    response = connection.getresponse()
    content = response.read()
    (work / f"{page.key}.html").write_bytes(content)
    if response.status != 200 or page.marker.encode() not in content:
        raise SystemExit(
            f"{page.name}: status {response.status}, marker {page.marker!r} "
            f"{'found' if page.marker.encode() in content else 'missing'} (body in {work / page.key}.html)"
        )


def server_cpu(pid: int, backends: list[int]) -> float:
    return sum(cpu_seconds(p) for p in [pid, *children(pid), *backends])


def postgres_backends(database: str) -> list[int]:
    if not database:
        return []
    name = database.rsplit("/", 1)[1]
    result = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc",
         f"SELECT pid FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"],  # noqa: S608
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [int(line) for line in result.stdout.split()]


def wrk(address: str, page: Page, sessions: list[tuple[str, str]], seconds: float, work: Path,
        pid: int, database: str) -> tuple[Run, str]:  # fmt: skip
    """One wrk run; its figures, and what was wrong ("" when every answer was as expected)."""
    script = work / f"{page.key}.lua"
    script.write_text(
        LUA
        % {
            "sessions": "{" + ", ".join(f"{{{lua_string(c)}, {lua_string(t)}}}" for c, t in sessions) + "}",
            "bodies": "{" + ", ".join(lua_string(b) for b in page.bodies) + "}",
            "method": lua_string(page.method),
            "path": lua_string(page.path),
            "expected": 200,
            "marker": lua_string(page.marker),
            "nthreads": THREADS,
        }
    )
    backends = postgres_backends(database)
    cpu_before = server_cpu(pid, backends)
    result = subprocess.run(
        ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(script),
         f"http://{address}{page.path}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    cpu = server_cpu(pid, backends) - cpu_before
    line = re.search(r"^WRK (.*)$", result.stdout, re.MULTILINE)
    if result.returncode != 0 or line is None:
        return Run(0, 0, 0, 0, 0), f"wrk failed (exit {result.returncode}): {result.stderr.strip()[-300:]}"
    values = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", line.group(1))}
    requests = values["requests"]
    run = Run(
        rps=requests / (values["duration_us"] / 1e6),
        p50=values["p50_us"] / 1000,
        p99=values["p99_us"] / 1000,
        cpu=cpu * 1000 / max(requests, 1),
        requests=requests,
    )
    problems = []
    if values["bad"]:
        problems.append(f"{values['bad']} answers with another status than 200 (last: {values['last_bad']})")
    if values["nomark"]:
        problems.append(f"{values['nomark']} answers without the page's marker {page.marker!r}")
    if values["socket_errors"]:
        problems.append(f"{values['socket_errors']} socket errors")
    if requests == 0:
        problems.append("no request answered")
    return run, "; ".join(problems)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=50_000, help="patients in the index (default 50,000)")
    parser.add_argument("--documents", type=int, default=1000, help="documents of the record page's patient")
    parser.add_argument("--events", type=int, default=100_000, help="journal events of the patient")
    parser.add_argument("--seconds", type=float, default=10, help="seconds of wrk per page and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (every page once each); medians")
    parser.add_argument("--database", default="")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("pages_http needs wrk (apt-get install wrk)")
    # One secret key for this process and the server: the session's auth hash is keyed with it.
    os.environ["ESANTE_SECRET_KEY"] = secrets.token_urlsafe(50)
    work = fresh_django(args.database)
    import logging

    from django.conf import settings
    from django.db import connection

    logging.disable(logging.INFO)
    backend = "PostgreSQL" if connection.vendor == "postgresql" else "SQLite"
    data = load(args)
    samples = data["samples"]
    assert isinstance(samples, list) and samples
    environment = {k: v for k, v in os.environ.items() if k not in ("ESANTE_DEBUG", "DJANGO_SETTINGS_MODULE")}
    environment.update(ESANTE_HTTPS="0", ESANTE_ALLOW_FILE_OUTBOX="1")
    limit, window = settings.ESANTE_SEARCH_RATE_LIMIT, settings.ESANTE_SEARCH_RATE_WINDOW_SECONDS
    search = "/edocuments/recherche/"
    record = f"/edocuments/patient/{data['record_patient'].public_id}/?vue=documentaire"  # type: ignore[attr-defined]
    pages = [
        Page("healthz", "raw HTTP floor, GET /healthz (no session)", "/healthz", '"ok"'),
        Page("bare", f"bare authenticated professional page, GET {search}", search, 'name="matricule"',
             floor="healthz"),
        Page("matricule", "search page POST by matricule", search, '<table class="patients">', floor="bare",
             goal="≤ 1.5×", method="POST",
             bodies=[urllib.parse.urlencode({"matricule": m, "name": "", "first_name": ""})
                     for m, _, _ in samples]),
        Page("name", "search page POST by name + first name", search, '<table class="patients">',
             floor="bare", goal="≤ 2×", method="POST",
             bodies=[urllib.parse.urlencode({"matricule": "", "name": n[:4], "first_name": g[:2]})
                     for _, n, g in samples]),
        Page("record", f"record page, {args.documents:,} documents, Vue documentaire", record,
             'class="doc-tree"', floor="bare", goal="≤ 2×"),
        Page("patient_bare", "bare patient page with the patient's session, GET /patient/", "/patient/",
             'href="/patient/connexion/"', floor="healthz", patient=True),
        Page("journal", f"patient journal, first page ({args.events:,} events)", "/patient/journal/",
             '<table class="journal">', floor="patient_bare", goal="≤ 2×", patient=True),
    ]  # fmt: skip
    by_key = {page.key: page for page in pages}
    with served(work, environment) as (address, pid):
        patient_sessions = [session_for(data["patient_user"], address, "") for _ in range(CONNECTIONS)]
        pros = professionals(CONNECTIONS, 0, data["record_patient"])
        pro_sessions = [session_for(user, address, search) for user in pros]
        for page in pages:
            check_once(address, page, (patient_sessions if page.patient else pro_sessions)[0], work)
        # Enough professionals that none reaches the search rate limit: the bare page's rate (a
        # search is not faster), with a margin, over every search of the run (warm-up included).
        probe, problem = wrk(address, by_key["bare"], pro_sessions, 2, work, pid, args.database)
        if problem:
            raise SystemExit(f"{by_key['bare'].name}: {problem}")
        searches = 2 * 1.5 * probe.rps * (args.rounds * args.seconds + 2) + 10
        per_professional = max(1, limit - 10)
        wanted = max(CONNECTIONS, math.ceil(searches / per_professional))
        pros += professionals(wanted - len(pros), len(pros), data["record_patient"])
        pro_sessions += [session_for(user, address, search) for user in pros[len(pro_sessions) :]]
        print(
            f"server: esante serve --workers 2 --threads 4 --no-jobs --no-leader, production settings "
            f"(no ESANTE_DEBUG, ESANTE_HTTPS=0 on loopback), {backend}; wrk -t{THREADS} -c{CONNECTIONS}, "
            f"{args.rounds} rounds of {args.seconds:g} s per page"
        )
        print(
            f"search rate limit: as configured ({limit} per {window} s, ESANTE_SEARCH_RATE_LIMIT): "
            f"{len(pro_sessions)} professionals' sessions in rotation, each at most "
            f"{per_professional} searches"
        )
        sessions = {False: pro_sessions, True: patient_sessions}
        failures = []
        for page in pages:  # warm-up
            _, problem = wrk(address, page, sessions[page.patient], 1, work, pid, args.database)
            if problem:
                failures.append(f"{page.name} (warm-up): {problem}")
        load_before = os.getloadavg()
        runs: dict[str, list[Run]] = {page.key: [] for page in pages}
        for _ in range(args.rounds):
            for page in pages:
                run, problem = wrk(
                    address, page, sessions[page.patient], args.seconds, work, pid, args.database
                )
                runs[page.key].append(run)
                if problem:
                    failures.append(f"{page.name}: {problem}")
        load_after = os.getloadavg()

    def median(values: list[float]) -> float:
        return statistics.median(values) if values else 0.0

    for page in pages:
        mine = runs[page.key]
        rps, p50 = median([r.rps for r in mine]), median([r.p50 for r in mine])
        p99, cpu = median([r.p99 for r in mine]), median([r.cpu for r in mine])
        figure = f"{rps:,.0f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms, server CPU {cpu:.2f} ms/request"
        floor = ratio = ""
        if page.floor:
            theirs = runs[page.floor]
            pairs = list(zip(mine, theirs, strict=True))
            ratio_rps = median([f.rps / m.rps for m, f in pairs if m.rps])
            ratio_p50 = median([m.p50 / f.p50 for m, f in pairs if f.p50])
            ratio_cpu = median([m.cpu / f.cpu for m, f in pairs if f.cpu])
            figure += f" (p50 {ratio_p50:.2f}×, CPU {ratio_cpu:.2f}× the floor's)"
            floor_page = by_key[page.floor]
            floor = (
                f"{floor_page.name}: {median([r.rps for r in theirs]):,.0f} req/s, "
                f"p50 {median([r.p50 for r in theirs]):.1f} ms, "
                f"CPU {median([r.cpu for r in theirs]):.2f} ms/request"
            )
            ratio = f"{ratio_rps:.2f}×"
        cells = {"operation": page.name, "figure": figure, "floor": floor, "ratio": ratio, "goal": page.goal}
        print("ROW | " + " | ".join(f"{key}={value.replace('|', '/')}" for key, value in cells.items()))
    print(
        f"load average: {load_before[0]:.2f} before the rounds, {load_after[0]:.2f} after "
        f"({os.cpu_count()} cores; ratios are of the same rounds)"
    )
    if failures:
        raise SystemExit(f"unexpected answers (bodies and server log in {work}): " + " / ".join(failures))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
