"""The real platform, started for the browser tests: a fresh data dir, the demo data set, gunicorn.

The server runs in subprocesses through the ``esante`` command, exactly as an operator starts
it, with real per-request transactions (autocommit between the services' own transactions, as
in production), never inside a test transaction. It never shares a database with
pytest-django's test database: on SQLite (the default) the database lives in a throw-away data
dir; when ``DATABASE_URL`` names PostgreSQL, the platform gets a fresh database of its own on
that server (``<name>_e2e``), created before the demo loads and dropped after the run.
"""

import dataclasses
import email
import email.policy
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ESANTE = Path(sys.executable).with_name("esante")

# Variables of the pytest process that must not reach the server: pytest-django's settings
# module, the test suite's secret key (the server is a demo: ESANTE_DEMO=1 and the key generated
# into its data dir), the database of the unit tests, and their data and outbox dirs.
_NOT_INHERITED = (
    "DJANGO_SETTINGS_MODULE",
    "DATABASE_URL",
    "ESANTE_SECRET_KEY",
    "ESANTE_DATA_DIR",
    "ESANTE_OUTBOX_DIR",
    "ESANTE_DEMO",
    "ESANTE_DEBUG",
    "ESANTE_HTTPS",
    "ESANTE_ALLOW_FILE_OUTBOX",
    "ESANTE_AUDIT_KEY_FILE",
    "ESANTE_AUDIT_HEADS_FILE",
    "ESANTE_AUDIT_HEADS_COPY_FILE",
    "ESANTE_AUDIT_WITNESS_URL",
    "ESANTE_AUDIT_PUBLIC_KEY_FILE",
    "ESANTE_AUDIT_MAC_KEY_FILE",
    "ESANTE_AUDIT_SIGNER_STATE_FILE",
    "ESANTE_QUEUE",
    "ESANTE_QUEUE_FILE",
    "ESANTE_QUEUE_NAME",
    "ESANTE_REDIS_URL",
)


class PlatformError(RuntimeError):
    """The platform could not be prepared or started; the message carries its output."""


class ServedDatabase:
    """The platform's own database: SQLite in its data dir, or a fresh PostgreSQL database on the
    server that ``DATABASE_URL`` names (created empty, dropped by ``drop``)."""

    def __init__(self, database_url: str | None) -> None:
        self.url: str | None = None
        self._admin_url = ""
        self._name = ""
        if database_url and database_url.startswith(("postgres://", "postgresql://")):
            parts = urllib.parse.urlsplit(database_url)
            base = parts.path.lstrip("/") or "esante"
            self._name = f"{base}_e2e"
            self.url = urllib.parse.urlunsplit(parts._replace(path=f"/{self._name}"))
            self._admin_url = urllib.parse.urlunsplit(parts._replace(path="/postgres"))

    @property
    def engine(self) -> str:
        return "postgresql" if self.url else "sqlite"

    def _execute(self, *statements: str) -> None:
        import psycopg

        with psycopg.connect(self._admin_url, autocommit=True) as connection:
            for statement in statements:
                connection.execute(statement)  # type: ignore[arg-type]

    def create(self) -> None:
        if self.url:
            self.drop()
            self._execute(f'CREATE DATABASE "{self._name}"')

    def drop(self) -> None:
        if self.url:
            # The name is ours (the configured database's name + "_e2e"), not user input.
            self._execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "  # noqa: S608
                f"WHERE datname = '{self._name}' AND pid <> pg_backend_pid()",
                f'DROP DATABASE IF EXISTS "{self._name}"',
            )


@dataclass(frozen=True)
class Professional:
    """A demo professional as ``esante demo`` prints it."""

    name: str
    matricule: str
    email: str = ""
    password: str = ""
    activation_code: str = ""
    certificate: Path | None = None  # the demo's PKCS#12 file for this professional


_ACTIVE_LINE = re.compile(
    r"^\s+\S+ (?P<name>.+?), matricule (?P<matricule>\d+) : mot de passe (?P<password>\S+), "
    r"code par e-mail \((?P<email>[^)]+)\)$"
)
_TO_ACTIVATE_LINE = re.compile(
    r"^\s+\S+ (?P<name>.+?), matricule (?P<matricule>\d+) : à activer, code d'activation (?P<code>\S+)$"
)


_CERTIFICATE_LINE = re.compile(r"^\s+(?P<name>.+?) \([^)]*\) : (?P<path>\S+\.p12)$")
_P12_PASSWORD = re.compile(r"\(PKCS#12, mot de passe (?P<password>\S+)\)")


def demo_professionals(output: str) -> dict[str, Professional]:
    """The professionals listed by ``esante demo``, by name ("Claudine Kremer")."""
    found: dict[str, Professional] = {}
    certificates: dict[str, Path] = {}
    for line in output.splitlines():
        if match := _ACTIVE_LINE.match(line):
            found[match["name"]] = Professional(
                name=match["name"],
                matricule=match["matricule"],
                email=match["email"],
                password=match["password"],
            )
        elif match := _TO_ACTIVATE_LINE.match(line):
            found[match["name"]] = Professional(
                name=match["name"], matricule=match["matricule"], activation_code=match["code"]
            )
        elif match := _CERTIFICATE_LINE.match(line):
            certificates[match["name"]] = Path(match["path"])
    return {
        name: dataclasses.replace(professional, certificate=certificates.get(name))
        for name, professional in found.items()
    }


def demo_p12_password(output: str) -> str:
    match = _P12_PASSWORD.search(output)
    return match["password"] if match else ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Outbox:
    """The one-time codes the platform wrote as files (``.eml`` e-mails, ``.json`` SMS)."""

    CODE = re.compile(r"\b(\d{6})\b")

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _files(self) -> set[Path]:
        if not self.directory.is_dir():
            return set()
        return {p for p in self.directory.iterdir() if p.suffix in {".eml", ".json"}}

    def mark(self) -> set[Path]:
        """The messages already there; pass it to ``code_for`` to read only newer ones."""
        return self._files()

    @staticmethod
    def _read(path: Path) -> tuple[str, str]:
        if path.suffix == ".json":
            sms = json.loads(path.read_text(encoding="utf-8"))
            return sms["to"], sms["text"]
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        return str(message["To"]), str(text)

    def code_for(self, address: str, *, since: set[Path], timeout: float = 10.0) -> str:
        """The 6-digit code of the newest message to ``address`` written after ``since``."""

        def same(to: str) -> bool:
            if "@" in address:
                return to.strip().lower() == address.lower()
            return re.sub(r"\D", "", to) == re.sub(r"\D", "", address)

        deadline = time.monotonic() + timeout
        while True:
            for path in sorted(self._files() - since, key=lambda p: p.name, reverse=True):
                to, text = self._read(path)
                if same(to) and (match := self.CODE.search(text)):
                    return match[1]
            if time.monotonic() > deadline:
                raise AssertionError(f"no one-time code for {address} in {self.directory} after {timeout} s")
            time.sleep(0.1)


class Platform:
    """Prepares a data dir with the demo data set, then serves it on a free local port."""

    def __init__(self, data_dir: Path, log_path: Path, database_url: str | None = None) -> None:
        self.data_dir = data_dir
        self.database = ServedDatabase(database_url)
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The certificate origin: HTTPS asking for a client certificate (the demo's local CA).
        self.certificate_port = free_port()
        while self.certificate_port == self.port:
            self.certificate_port = free_port()
        self.certificate_url = f"https://127.0.0.1:{self.certificate_port}"
        self.p12_password = ""
        self.outbox = Outbox(data_dir / "outbox")
        self.professionals: dict[str, Professional] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._log = None

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
        env.update(
            ESANTE_DATA_DIR=str(self.data_dir),
            ESANTE_DEBUG="0",
            # Every command on the demo data dir (demo, serve, issue_activation) runs as the demo.
            ESANTE_DEMO="1",
            # Signed audit heads are not what these tests look at; one signature at stop is enough.
            ESANTE_AUDIT_ANCHOR_SECONDS="3600",
            # "Recevoir un nouveau code" after 10 s instead of a minute (test_row_locks asks twice).
            ESANTE_OTP_RESEND_SECONDS="10",
            PYTHONUNBUFFERED="1",
        )
        if self.database.url:
            env["DATABASE_URL"] = self.database.url
        return env

    def command(self, *args: str, timeout: float = 120) -> str:
        """Runs ``esante ARGS`` on the platform's data dir; returns stdout, raises with the output."""
        result = subprocess.run(
            [str(ESANTE), *args],
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise PlatformError(
                f"esante {' '.join(args)} exited with {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result.stdout

    def prepare(self) -> None:
        """Migrates and loads the demo data set (``esante demo --no-serve`` does both)."""
        self.database.create()
        output = self.command(
            "demo",
            "--no-serve",
            "--port", str(self.port),
            "--certificate-port", str(self.certificate_port),
            timeout=300,
        )  # fmt: skip
        self.professionals = demo_professionals(output)
        self.p12_password = demo_p12_password(output)
        if not self.professionals:
            raise PlatformError(f"no demo professional found in the output of esante demo:\n{output}")

    def issue_activation(self, matricule: str) -> str:
        """A fresh activation code (``esante issue_activation``; earlier letters are revoked)."""
        output = self.command("issue_activation", "--matricule", matricule)
        match = re.search(r"^activation code: (\S+)$", output, re.MULTILINE)
        if match is None:
            raise PlatformError(f"no activation code in the output of esante issue_activation:\n{output}")
        return match[1]

    def issue_patient_activation(self, matricule: str) -> str:
        """A fresh activation code for a patient's area (``esante issue_patient_activation``)."""
        output = self.command("issue_patient_activation", "--matricule", matricule)
        match = re.search(r"^activation code: (\S+)$", output, re.MULTILINE)
        if match is None:
            raise PlatformError(
                f"no activation code in the output of esante issue_patient_activation:\n{output}"
            )
        return match[1]

    def start(self, *, timeout: float = 60) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            [
                str(ESANTE),
                "serve",
                "--port",
                str(self.port),
                "--workers",
                "2",
                "--certificate-port",
                str(self.certificate_port),
            ],  # fmt: skip
            env=self.environment(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends gunicorn and its workers
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PlatformError(
                    f"esante serve exited with {self._process.returncode}:\n{self.log_tail()}"
                )
            if self._healthy() and self._listening(self.certificate_port):
                return
            time.sleep(0.2)
        self.stop()
        raise PlatformError(f"esante serve did not answer /healthz within {timeout} s:\n{self.log_tail()}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    @staticmethod
    def _listening(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()  # gunicorn's master stops its workers on SIGTERM
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
