"""Settings, read from the environment (see README, "Configuration").

Fails fast: a non-debug, non-demo start-up without ``ESANTE_SECRET_KEY`` (or with a short one)
stops with a clear message, and so does a production start-up that would write one-time codes in
clear to files.
"""

import ipaddress
import os
import secrets
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

env = environ.Env()

PACKAGE_DIR = Path(__file__).resolve().parent

DEBUG = env.bool("ESANTE_DEBUG", default=False)
# Demo mode only when asked for: ``esante demo`` sets ESANTE_DEMO=1 itself; other commands on a
# demo data dir need it in their environment. It is never inferred from the data dir's contents.
DEMO_MODE = env.bool("ESANTE_DEMO", default=False)

DATA_DIR = Path(env.str("ESANTE_DATA_DIR", default="var")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY_MIN_LENGTH = 32
_GENERATE_KEY = "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`"


def _secret_key() -> str:
    key = env.str("ESANTE_SECRET_KEY", default="")
    if key:
        if len(key) < SECRET_KEY_MIN_LENGTH:
            raise ImproperlyConfigured(
                f"ESANTE_SECRET_KEY is too short ({len(key)} characters; at least {SECRET_KEY_MIN_LENGTH} "
                f"are required). Generate one with {_GENERATE_KEY}."
            )
        return key
    key_file = DATA_DIR / "secret_key"
    if not (DEBUG or DEMO_MODE):
        hint = (
            f" {key_file} holds a generated key: on a data dir made by `esante demo`, set ESANTE_DEMO=1."
            if key_file.exists()
            else ""
        )
        raise ImproperlyConfigured(
            "ESANTE_SECRET_KEY is not set. Set it to a long random value (for example the output of "
            f"{_GENERATE_KEY}) before starting the platform; only `esante demo` (ESANTE_DEMO=1) or "
            f"ESANTE_DEBUG=1 generate one.{hint}"
        )
    if not key_file.exists():
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(50))
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
# Production: a secret key was given explicitly and neither debug nor demo mode is on. The demo
# refuses to run then.
PRODUCTION = bool(env.str("ESANTE_SECRET_KEY", default="")) and not DEBUG and not DEMO_MODE

ALLOWED_HOSTS = env.list("ESANTE_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("ESANTE_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_otp",
    "django_otp.plugins.otp_email",
    "esante.core",
    "esante.accounts",
    "esante.patients",
    "esante.audit",
    "esante.tlog",
    "esante.access",
    "esante.documents",
    "esante.dispensing",
    "esante.espace",
    "esante.fhir",
    "esante.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "esante.core.metrics.RequestMetricsMiddleware",
    "esante.core.middleware.RequestLogMiddleware",
    "esante.core.middleware.ContentSecurityPolicyMiddleware",
    "esante.fhir.middleware.FhirErrorMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "esante.core.middleware.SessionIdleMiddleware",
    "esante.core.replica.ReplicaSessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "esante.urls"
WSGI_APPLICATION = "esante.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [PACKAGE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "esante.core.context_processors.platform",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'esante.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # BEGIN IMMEDIATE: a writer takes the write lock at the start, so two writers queue
        # instead of failing with "database is locked" half-way through.
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
    }
# Persistent connections on both databases: each request thread keeps its own. On SQLite that
# saves the file's opening and the PRAGMAs above at every request (about a quarter of an API
# call: benchmarks/fhir_api.py); an idle connection holds no transaction (autocommit), so it
# keeps neither the write lock nor a WAL checkpoint waiting.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("ESANTE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# --- a PostgreSQL hot standby for the lag-tolerant reads (esante.core.replica) -----------------
# With ESANTE_REPLICA_DATABASE_URL, a second alias ``replica`` and a router: the reads
# ``esante.core.replica.lag_tolerant`` wraps (named in ESANTE_REPLICA_READS) go to the standby
# while it answers and lags at most ESANTE_REPLICA_MAX_LAG_SECONDS; everything else, every read
# inside a transaction and every read of a session that wrote (until the standby has replayed the
# write, at most ESANTE_REPLICA_PIN_SECONDS) go to the primary.
REPLICA_READS = ("patient_search", "record_documents", "patient_journal")
ESANTE_REPLICA_DATABASE_URL = env.str("ESANTE_REPLICA_DATABASE_URL", default="")
ESANTE_REPLICA = bool(ESANTE_REPLICA_DATABASE_URL)
ESANTE_REPLICA_MAX_LAG_SECONDS = env.float("ESANTE_REPLICA_MAX_LAG_SECONDS", default=5.0)
ESANTE_REPLICA_PIN_SECONDS = env.float("ESANTE_REPLICA_PIN_SECONDS", default=60.0)
ESANTE_REPLICA_CHECK_SECONDS = env.float("ESANTE_REPLICA_CHECK_SECONDS", default=1.0)
ESANTE_REPLICA_RETRY_SECONDS = env.float("ESANTE_REPLICA_RETRY_SECONDS", default=5.0)
ESANTE_REPLICA_READS = env.list("ESANTE_REPLICA_READS", default=list(REPLICA_READS))
if unknown_reads := sorted(set(ESANTE_REPLICA_READS) - set(REPLICA_READS)):
    raise ImproperlyConfigured(
        f"ESANTE_REPLICA_READS names unknown reads: {', '.join(unknown_reads)} "
        f"(known: {', '.join(REPLICA_READS)})"
    )
if ESANTE_REPLICA_PIN_SECONDS < ESANTE_REPLICA_MAX_LAG_SECONDS:
    # Past the pin, a standby that has still not replayed the session's write lags more than the
    # pin (its lag is measured from the last transaction it replayed): only a pin at least as long
    # as the tolerated lag keeps such a standby out of the session's reads.
    raise ImproperlyConfigured(
        "ESANTE_REPLICA_PIN_SECONDS must be at least ESANTE_REPLICA_MAX_LAG_SECONDS "
        f"({ESANTE_REPLICA_PIN_SECONDS:g} < {ESANTE_REPLICA_MAX_LAG_SECONDS:g})"
    )
if ESANTE_REPLICA:
    if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            "ESANTE_REPLICA_DATABASE_URL needs a PostgreSQL DATABASE_URL (the primary)."
        )
    _replica = env.db_url_config(ESANTE_REPLICA_DATABASE_URL)
    if _replica["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            "ESANTE_REPLICA_DATABASE_URL must name a PostgreSQL hot standby (postgres://…)."
        )
    _replica["CONN_MAX_AGE"] = DATABASES["default"]["CONN_MAX_AGE"]
    _replica["CONN_HEALTH_CHECKS"] = True
    _replica["OPTIONS"] = {
        # A standby that is down must cost a request little: reads then go to the primary.
        "connect_timeout": env.int("ESANTE_REPLICA_CONNECT_TIMEOUT", default=2),
        # A standby refuses writes anyway; so does a promoted one reached through this alias.
        "options": "-c default_transaction_read_only=on",
        **_replica.get("OPTIONS", {}),
    }
    # Under test, the alias is the test database itself (tests/replica points it at a standby).
    _replica["TEST"] = {"MIRROR": "default"}
    DATABASES["replica"] = _replica
DATABASE_ROUTERS = ["esante.core.replica.ReplicaRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator",
        "OPTIONS": {"user_attributes": ("username", "first_name", "last_name", "email")},
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "fr"
LANGUAGES = [("fr", "Français"), ("de", "Deutsch"), ("en", "English")]
LOCALE_PATHS = [PACKAGE_DIR / "locale"]
# Dates and numbers per language (esante/formats/<lang>/formats.py); French as the guide shows it.
FORMAT_MODULE_PATH = "esante.formats"
TIME_ZONE = "Europe/Luxembourg"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [PACKAGE_DIR / "static"]
# --- document bytes: the filesystem (the embedded default) or an S3-protocol object store ------
# s3: a private bucket through django-storages (esante.core.storage.S3DocumentStorage): no ACL
# sent, no signed URL ever made, SHA-256 kept by the store and checked on every read. The keys may
# be left out to use boto3's own chain (instance role, AWS_* variables); never logged.
ESANTE_STORAGE = env.str("ESANTE_STORAGE", default="filesystem")
if ESANTE_STORAGE == "filesystem":
    _documents_storage: dict[str, object] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(DATA_DIR / "documents")},
    }
elif ESANTE_STORAGE == "s3":
    _s3 = {
        "bucket_name": env.str("ESANTE_S3_BUCKET", default=""),
        "endpoint_url": env.str("ESANTE_S3_ENDPOINT_URL", default="") or None,
        "region_name": env.str("ESANTE_S3_REGION", default="") or None,
        "access_key": env.str("ESANTE_S3_ACCESS_KEY_ID", default="") or None,
        "secret_key": env.str("ESANTE_S3_SECRET_ACCESS_KEY", default="") or None,
    }
    if not _s3["bucket_name"]:
        raise ImproperlyConfigured("ESANTE_STORAGE=s3 needs ESANTE_S3_BUCKET (the documents' private bucket)")
    if (_s3["access_key"] is None) != (_s3["secret_key"] is None):
        raise ImproperlyConfigured(
            "ESANTE_S3_ACCESS_KEY_ID and ESANTE_S3_SECRET_ACCESS_KEY go together (or neither: boto3's chain)"
        )
    _documents_storage = {"BACKEND": "esante.core.storage.S3DocumentStorage", "OPTIONS": _s3}
else:
    raise ImproperlyConfigured(f"ESANTE_STORAGE must be filesystem or s3, not {ESANTE_STORAGE!r}")
STORAGES = {
    "default": _documents_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --- job queue (Huey): what follows a commit, off the request (certified copies, eDispensation) --
# sqlite: a file in the data dir, no other service (the embedded default); redis: production,
# several app servers (ESANTE_REDIS_URL); immediate: each job runs at once in the caller, as if
# there were no queue (tests, and the synchronous baseline of the benchmarks).
ESANTE_REDIS_URL = env.str("ESANTE_REDIS_URL", default="")
ESANTE_QUEUE = env.str("ESANTE_QUEUE", default="redis" if ESANTE_REDIS_URL else "sqlite")
if ESANTE_QUEUE not in ("sqlite", "redis", "immediate"):
    raise ImproperlyConfigured(f"ESANTE_QUEUE must be sqlite, redis or immediate, not {ESANTE_QUEUE!r}")
if ESANTE_QUEUE == "redis" and not ESANTE_REDIS_URL:
    raise ImproperlyConfigured("ESANTE_QUEUE=redis needs ESANTE_REDIS_URL (e.g. redis://127.0.0.1:6379/0)")
ESANTE_QUEUE_FILE = Path(env.str("ESANTE_QUEUE_FILE", default=str(DATA_DIR / "jobs.sqlite3")))
ESANTE_QUEUE_NAME = env.str("ESANTE_QUEUE_NAME", default="esante")
ESANTE_QUEUE_WORKERS = env.int("ESANTE_QUEUE_WORKERS", default=2)
# The sweep (esante dispensation_follow_up, and every 5 minutes in the consumer) completes the
# dispensations left without their copy for longer than this: their job was lost.
ESANTE_FOLLOW_UP_GRACE_SECONDS = env.int("ESANTE_FOLLOW_UP_GRACE_SECONDS", default=120)

# --- security headers and cookies -------------------------------------------------------------
# On by default in production: secure __Host- cookies, HSTS, the proxy's X-Forwarded-Proto and the
# redirect to HTTPS. ESANTE_HTTPS=0 turns them off deliberately, e.g. for a production-configured
# instance reached only over plain HTTP on a private test network: never on a public address.
HTTPS = env.bool("ESANTE_HTTPS", default=PRODUCTION)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# Idle timeout: esante.core.middleware.SessionIdleMiddleware ends a session idle for longer than
# this; the time of its last activity is renewed (and the session saved) at most once per touch
# interval, so a page read does not write the session. The stored row lives one interval longer,
# so that the middleware, not the row's expiry, ends it.
ESANTE_SESSION_IDLE_SECONDS = env.int("ESANTE_SESSION_IDLE_SECONDS", default=30 * 60)
ESANTE_SESSION_TOUCH_SECONDS = 60
SESSION_COOKIE_AGE = ESANTE_SESSION_IDLE_SECONDS + ESANTE_SESSION_TOUCH_SECONDS
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
CSRF_COOKIE_HTTPONLY = True
# The header's language switch (Django's set_language) keeps the choice in this cookie.
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
if HTTPS:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    LANGUAGE_COOKIE_SECURE = True
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("ESANTE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("ESANTE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True

ESANTE_TRUSTED_PROXIES = env.list("ESANTE_TRUSTED_PROXIES", default=[])

# --- operations: /metrics, /healthz, /readyz ----------------------------------------------------
# The load balancer and Prometheus reach the app servers directly over plain HTTP: no redirect.
SECURE_REDIRECT_EXEMPT = [r"^(healthz|readyz|metrics)$"]
# /metrics answers only clients in these networks (the monitoring network); 404 to anyone else.
ESANTE_METRICS_ALLOWED = env.list("ESANTE_METRICS_ALLOWED", default=["127.0.0.1/32", "::1/128"])
try:
    METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network(n, strict=False) for n in ESANTE_METRICS_ALLOWED]
except ValueError as exc:
    raise ImproperlyConfigured(f"ESANTE_METRICS_ALLOWED holds a value that is not a network: {exc}") from exc
# Each gunicorn worker writes its counters to files there (prometheus_client's multiprocess mode,
# chosen from the environment before the library is first imported); /metrics adds them up.
ESANTE_METRICS_DIR = Path(env.str("ESANTE_METRICS_DIR", default=str(DATA_DIR / "metrics")))
ESANTE_METRICS_DIR.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(ESANTE_METRICS_DIR)

# --- audit trail anchoring --------------------------------------------------------------------
# The signing key must live outside the database (and in production outside the data volume
# that the database shares): whoever can rewrite the database must not be able to re-sign heads.
AUDIT_SIGNING_KEY_FILE = Path(
    env.str("ESANTE_AUDIT_KEY_FILE", default=str(DATA_DIR / "audit" / "signing-key.pem"))
)
# Its public half, written next to it when the key is created; all ``verify_audit`` needs (it
# derives it from the private key when that is at hand) and never writes.
AUDIT_PUBLIC_KEY_FILE = Path(
    env.str(
        "ESANTE_AUDIT_PUBLIC_KEY_FILE",
        default=str(AUDIT_SIGNING_KEY_FILE.with_name(AUDIT_SIGNING_KEY_FILE.stem + ".pub.pem")),
    )
)
# The key of each event's HMAC (written by ``audit_record``, checked by the signer and
# ``verify_audit``): outside the database, so a forged event that chains correctly has no valid MAC.
AUDIT_MAC_KEY_FILE = Path(
    env.str("ESANTE_AUDIT_MAC_KEY_FILE", default=str(AUDIT_SIGNING_KEY_FILE.with_name("mac-key")))
)
# The signer's own record of what it signed and what the witness acknowledged, next to its key:
# it refuses to sign when the heads file is behind it.
AUDIT_SIGNER_STATE_FILE = Path(
    env.str(
        "ESANTE_AUDIT_SIGNER_STATE_FILE",
        default=str(AUDIT_SIGNING_KEY_FILE.with_name("signer-state.json")),
    )
)
# A first head over a trail longer than this needs ``esante anchor_audit --initial``.
AUDIT_INITIAL_MAX_EVENTS = env.int("ESANTE_AUDIT_INITIAL_MAX_EVENTS", default=20)
AUDIT_HEADS_FILE = Path(env.str("ESANTE_AUDIT_HEADS_FILE", default=str(DATA_DIR / "audit" / "heads.jsonl")))
# Copies of the heads file written (and fsync'ed) with it, on other volumes: comma-separated paths.
AUDIT_HEADS_COPY_FILES = [Path(p) for p in env.list("ESANTE_AUDIT_HEADS_COPY_FILE", default=[])]
# A witness off the database host that receives each signed head (HTTP POST of its JSON line).
AUDIT_WITNESS_URL = env.str("ESANTE_AUDIT_WITNESS_URL", default="")
# The signer (``esante serve``) signs new events at most this many seconds after they are written,
# and as soon as this many are waiting: events after the last signed head are unsigned.
AUDIT_ANCHOR_INTERVAL = env.float("ESANTE_AUDIT_ANCHOR_SECONDS", default=5.0)
AUDIT_ANCHOR_EVERY_EVENTS = env.int("ESANTE_AUDIT_ANCHOR_EVERY_EVENTS", default=100)
# How ``audit_record`` chains events (``esante.audit.chaining``): "inline" locks the chain head
# row in each action's transaction (every audited action queues on it: right for SQLite, a single
# writer anyway); "batched" inserts the event without a lock and the leader's sequencer chains the
# waiting events in batches (recommended on PostgreSQL with concurrent writers).
AUDIT_CHAINING = env.str("ESANTE_AUDIT_CHAINING", default="inline")
if AUDIT_CHAINING not in ("inline", "batched"):
    raise ImproperlyConfigured('ESANTE_AUDIT_CHAINING must be "inline" or "batched"')
# In batched mode, how often ``esante serve`` (the leader) chains the waiting events and puts them
# into the public log: an event is in a signed checkpoint about this long after its commit.
AUDIT_CHAIN_INTERVAL = env.float("ESANTE_AUDIT_CHAIN_SECONDS", default=0.2)

# --- public transparency log (esante.tlog) ----------------------------------------------------
# The log's origin: the first line of every checkpoint and the name of its signing key.
TLOG_ORIGIN = env.str("ESANTE_TLOG_ORIGIN", default="esante.lu/edocuments")
# Events put into the log per transaction, and how often ``esante serve`` sequences new ones.
TLOG_BATCH_SIZE = env.int("ESANTE_TLOG_BATCH_SIZE", default=2000)
TLOG_SEQUENCE_INTERVAL = env.float("ESANTE_TLOG_SEQUENCE_SECONDS", default=2.0)
# The witness the sequencer asks to cosign each new checkpoint (C2SP tlog-witness: its URL
# prefix, to which ``/add-checkpoint`` is added) and its verifier key (``name+keyid+key``, type
# 0x04, as ``esante witness --print-key`` shows it). Both empty: checkpoints carry the log's
# signature alone.
TLOG_WITNESS_URL = env.str("ESANTE_TLOG_WITNESS_URL", default="")
TLOG_WITNESS_KEY = env.str("ESANTE_TLOG_WITNESS_KEY", default="")
if bool(TLOG_WITNESS_URL) != bool(TLOG_WITNESS_KEY):
    raise ImproperlyConfigured("ESANTE_TLOG_WITNESS_URL and ESANTE_TLOG_WITNESS_KEY go together")
# ``esante witness`` (the witness itself, a process of its own, best on another host): its name,
# its private key (created on first start) and its record of the last checkpoint it cosigned.
TLOG_WITNESS_NAME = env.str("ESANTE_TLOG_WITNESS_NAME", default="witness.esante.lu/w1")
TLOG_WITNESS_KEY_FILE = Path(
    env.str("ESANTE_TLOG_WITNESS_KEY_FILE", default=str(DATA_DIR / "witness" / "witness-key.pem"))
)
TLOG_WITNESS_STATE_FILE = Path(
    env.str("ESANTE_TLOG_WITNESS_STATE_FILE", default=str(DATA_DIR / "witness" / "state.json"))
)
# The logs' verifier keys it trusts (comma-separated); empty: this platform's own log key.
TLOG_WITNESS_LOG_KEYS = env.list("ESANTE_TLOG_WITNESS_LOG_KEYS", default=[])

# --- several app servers: the leader lock (esante.core.leader) -----------------------------------
# Of several ``esante serve`` on one database, the one holding the leader lock runs the audit
# signer and the log's sequencer; the others try to take it over every this many seconds.
LEADER_SECONDS = env.float("ESANTE_LEADER_SECONDS", default=2.0)

# --- logging: one line per request, never a body, a query string, a code or a password ---------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"scrub": {"()": "esante.core.logging.ScrubSecretsFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["scrub"]}},
    "loggers": {
        "esante.request": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # The job queue's consumer: its failures (a job's traceback), not a line per job.
        "huey": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        "esante": {"handlers": ["console"], "level": env.str("ESANTE_LOG_LEVEL", default="INFO")},
        # Django's own request logger repeats the full path of failing requests; ours is enough.
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}

# --- accounts ---------------------------------------------------------------------------------
LOGIN_URL = "/professionnel/connexion/"
LOGIN_REDIRECT_URL = "/edocuments/"
# Terms of use (CGU): the version a professional accepts is recorded with the time of acceptance.
ESANTE_TERMS_VERSION = "2020-01"
ESANTE_ACTIVATION_LETTER_DAYS = 92  # three months
ESANTE_ACTIVATION_WIZARD_MINUTES = 30
ESANTE_OTP_VALID_SECONDS = 300
ESANTE_OTP_MAX_TRIES = 3
ESANTE_OTP_RESEND_SECONDS = env.int("ESANTE_OTP_RESEND_SECONDS", default=60)
# The operators' admin wants an OTP-verified session (platform login with password + code).
ESANTE_ADMIN_REQUIRE_OTP = env.bool("ESANTE_ADMIN_REQUIRE_OTP", default=True)
# Failed logins, activation codes and one-time codes (accounts/throttling.py). Per account and
# client address: the first failures are free, then each failure delays that address's next try on
# that account (1 minute, doubling, capped). The account as a whole (every address) is locked only
# after ESANTE_ACCOUNT_LOCK_AFTER_FAILURES consecutive failures (NIST SP 800-63B allows up to 100),
# for ESANTE_ACCOUNT_LOCK_MINUTES, doubling at each further lock (at most a day); the certificate
# login stays open. Each client network (IPv4 address, IPv6 /64): beyond
# ESANTE_ADDRESS_MAX_FAILURES_PER_HOUR failures across all accounts, growing delays (not for an
# account that logged in from that network before).
ESANTE_THROTTLE_FREE_FAILURES = env.int("ESANTE_THROTTLE_FREE_FAILURES", default=3)
ESANTE_THROTTLE_DELAY_SECONDS = env.int("ESANTE_THROTTLE_DELAY_SECONDS", default=60)
ESANTE_THROTTLE_MAX_DELAY_MINUTES = env.int("ESANTE_THROTTLE_MAX_DELAY_MINUTES", default=60)
ESANTE_ACCOUNT_LOCK_AFTER_FAILURES = env.int("ESANTE_ACCOUNT_LOCK_AFTER_FAILURES", default=100)
ESANTE_ACCOUNT_LOCK_MINUTES = env.int("ESANTE_ACCOUNT_LOCK_MINUTES", default=15)
ESANTE_ADDRESS_MAX_FAILURES_PER_HOUR = env.int("ESANTE_ADDRESS_MAX_FAILURES_PER_HOUR", default=20)
# The professional is told by e-mail when their account is attacked: at most one mail per window.
ESANTE_ATTACK_NOTICE_MINUTES = env.int("ESANTE_ATTACK_NOTICE_MINUTES", default=60)
# Certificate login: PEM bundle of trusted CAs, CRL files (PEM or DER, comma-separated), and the
# request header in which the TLS-terminating proxy forwards the verified client certificate
# (nginx: ``proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert``). The header is believed
# only from ESANTE_TRUSTED_PROXIES.
ESANTE_TRUSTED_CA = env.str("ESANTE_TRUSTED_CA", default="")
ESANTE_CRL = env.list("ESANTE_CRL", default=[])
ESANTE_CLIENT_CERT_HEADER = "HTTP_X_SSL_CLIENT_CERT"
# The dedicated certificate origin: the TLS endpoint that asks for the client certificate (nginx
# with ``ssl_verify_client on``, see deploy/nginx.conf), e.g. https://certificat.portail.example.lu.
# The portal never asks for a certificate: its "Connexion" buttons send the browser there, and the
# origin sends it back with a single-use token. ``esante demo`` sets it to its own local origin.
ESANTE_CERTIFICATE_ORIGIN = env.str("ESANTE_CERTIFICATE_ORIGIN", default="").rstrip("/")
# ``esante serve`` also serves the origin itself (HTTPS, mutual TLS) on this port when non-zero, with
# this server certificate and key (the demo generates both with its local CA when they are empty).
ESANTE_CERTIFICATE_PORT = env.int("ESANTE_CERTIFICATE_PORT", default=0)
ESANTE_CERTIFICATE_TLS_CERT = env.str("ESANTE_CERTIFICATE_TLS_CERT", default="")
ESANTE_CERTIFICATE_TLS_KEY = env.str("ESANTE_CERTIFICATE_TLS_KEY", default="")
# A presentation started on the portal must reach the origin within this time (PIN entry); the
# token bringing the browser back is valid one minute and used once.
ESANTE_CERTIFICATE_REQUEST_SECONDS = 300
ESANTE_CERTIFICATE_TOKEN_SECONDS = 60
# The demo's local certificate authority (generated into the data dir, with a PKCS#12 file per demo
# professional) is trusted in addition to ESANTE_TRUSTED_CA; never outside the demo.
ESANTE_LOCAL_CA = str(DATA_DIR / "certificats" / "ca.pem") if DEMO_MODE and not PRODUCTION else ""
# The demo (never production) also lets activation step 1 be passed without a certificate, so a
# newcomer without a browser certificate can walk the activation; the skip is audited.
ESANTE_ACTIVATION_CERTIFICATE_OPTIONAL = DEMO_MODE and not PRODUCTION
# Delivery of one-time codes. Default: one file per message under OUTBOX_DIR (.eml / .json).
OUTBOX_DIR = Path(env.str("ESANTE_OUTBOX_DIR", default=str(DATA_DIR / "outbox")))
EMAIL_BACKEND = env.str("ESANTE_EMAIL_BACKEND", default="esante.accounts.delivery.FileEmailBackend")
EMAIL_HOST = env.str("ESANTE_EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("ESANTE_EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("ESANTE_EMAIL_USER", default="")
EMAIL_HOST_PASSWORD = env.str("ESANTE_EMAIL_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("ESANTE_EMAIL_TLS", default=False)
DEFAULT_FROM_EMAIL = env.str("ESANTE_EMAIL_FROM", default="eSanté <no-reply@esante.lu>")
# Seconds the SMTP backend waits for the mail server (connect and each answer) before giving up:
# a slow server must not hold a login (attack notices are sent after the commit, codes within it).
EMAIL_TIMEOUT = env.int("ESANTE_EMAIL_TIMEOUT", default=10)
ESANTE_SMS_BACKEND = env.str("ESANTE_SMS_BACKEND", default="esante.accounts.delivery.FileSmsBackend")
ESANTE_SMS_GATEWAY_URL = env.str("ESANTE_SMS_GATEWAY_URL", default="")
ESANTE_SMS_GATEWAY_TOKEN = env.str("ESANTE_SMS_GATEWAY_TOKEN", default="")
ESANTE_OUTBOX_ECHO = DEMO_MODE  # the demo also prints each message on the console
# The file backends write one-time codes in clear to disk: refused in production unless an
# operator deliberately allows them (ESANTE_ALLOW_FILE_OUTBOX=1, e.g. a staging platform).
ESANTE_ALLOW_FILE_OUTBOX = env.bool("ESANTE_ALLOW_FILE_OUTBOX", default=False)
_FILE_BACKENDS = {
    "ESANTE_EMAIL_BACKEND": (EMAIL_BACKEND, "esante.accounts.delivery.FileEmailBackend"),
    "ESANTE_SMS_BACKEND": (ESANTE_SMS_BACKEND, "esante.accounts.delivery.FileSmsBackend"),
}
_file_backends_in_use = [name for name, (value, file) in _FILE_BACKENDS.items() if value == file]
if PRODUCTION and _file_backends_in_use and not ESANTE_ALLOW_FILE_OUTBOX:
    raise ImproperlyConfigured(
        f"{' and '.join(_file_backends_in_use)} use the file backend, which writes one-time codes in "
        "clear under ESANTE_OUTBOX_DIR: refused in production. Set "
        "ESANTE_EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend and "
        "ESANTE_SMS_BACKEND=esante.accounts.delivery.HttpSmsBackend (with ESANTE_SMS_GATEWAY_URL), "
        "or ESANTE_ALLOW_FILE_OUTBOX=1 to keep the files deliberately."
    )
if PRODUCTION and not ESANTE_SMS_GATEWAY_URL and ESANTE_SMS_BACKEND.endswith("HttpSmsBackend"):
    raise ImproperlyConfigured("ESANTE_SMS_GATEWAY_URL is required by the HTTP SMS backend.")

# --- access
# Care and own-documents access lifetimes per profession, in hours; defaults in esante.access.policy
# (pharmacist 24 h, doctor and dentist 6 months, nurse, midwife and physiotherapist 3 months).
ESANTE_ACCESS_HOURS = {
    profession: env.int(f"ESANTE_ACCESS_HOURS_{profession.upper()}", default=hours)
    for profession, hours in {
        "pharmacist": 24,
        "doctor": 183 * 24,
        "dentist": 183 * 24,
        "nurse": 92 * 24,
        "midwife": 92 * 24,
        "physiotherapist": 92 * 24,
    }.items()
}
ESANTE_ACCESS_EMERGENCY_HOURS = env.int("ESANTE_ACCESS_EMERGENCY_HOURS", default=2)
# Version of the access conditions ("Conditions d'accès au dossier eDocument du patient") recorded on grants.
ESANTE_ACCESS_CONDITIONS_VERSION = env.str("ESANTE_ACCESS_CONDITIONS_VERSION", default="2020-1")
# Patient search: at most this many searches per professional in the window; results stop at the cap.
ESANTE_SEARCH_RATE_LIMIT = env.int("ESANTE_SEARCH_RATE_LIMIT", default=60)
ESANTE_SEARCH_RATE_WINDOW_SECONDS = env.int("ESANTE_SEARCH_RATE_WINDOW_SECONDS", default=600)
ESANTE_SEARCH_MAX_RESULTS = env.int("ESANTE_SEARCH_MAX_RESULTS", default=200)
# "Mes derniers dossiers": records opened within this many days.
ESANTE_RECENT_RECORDS_DAYS = env.int("ESANTE_RECENT_RECORDS_DAYS", default=90)

# --- documents ---------------------------------------------------------------------------------
ESANTE_DOCUMENT_MAX_BYTES = env.int("ESANTE_DOCUMENT_MAX_BYTES", default=20 * 1024 * 1024)
# A submitted PDF is inspected for active content within these bounds (documents/pdf.py).
ESANTE_PDF_MAX_OBJECTS = env.int("ESANTE_PDF_MAX_OBJECTS", default=100_000)
ESANTE_PDF_MAX_SECONDS = env.float("ESANTE_PDF_MAX_SECONDS", default=5.0)

# --- dispensing
# A prescription is first dispensed within this many months of its date; successive deliveries
# fall within this many months of the first; the recording pharmacist may withdraw a dispensation
# for this many hours.
ESANTE_PRESCRIPTION_VALIDITY_MONTHS = env.int("ESANTE_PRESCRIPTION_VALIDITY_MONTHS", default=3)
ESANTE_DISPENSATION_SERIES_MONTHS = env.int("ESANTE_DISPENSATION_SERIES_MONTHS", default=6)
ESANTE_DISPENSATION_WITHDRAW_HOURS = env.int("ESANTE_DISPENSATION_WITHDRAW_HOURS", default=24)
# Public address printed (as a QR code) on certified copies, e.g. https://edocuments.esante.lu;
# empty: the address the pharmacist's request came in on.
ESANTE_PUBLIC_URL = env.str("ESANTE_PUBLIC_URL", default="")
# Public verification page: at most this many verifications per client address and window. The
# counter lives in the database (table dispensing_verificationattempt), shared by every worker.
ESANTE_VERIFY_RATE_LIMIT = env.int("ESANTE_VERIFY_RATE_LIMIT", default=30)
ESANTE_VERIFY_RATE_WINDOW_SECONDS = env.int("ESANTE_VERIFY_RATE_WINDOW_SECONDS", default=600)

# --- FHIR API and its authorization server (fhir/) ---------------------------------------------
# Access tokens are short-lived; refresh tokens rotate at each use and last at most this long.
ESANTE_FHIR_TOKEN_SECONDS = env.int("ESANTE_FHIR_TOKEN_SECONDS", default=300)
ESANTE_FHIR_REFRESH_SECONDS = env.int("ESANTE_FHIR_REFRESH_SECONDS", default=8 * 3600)
ESANTE_FHIR_CODE_SECONDS = 60
# Token requests per client network and window (counted in the database: every application
# server counts the same).
ESANTE_FHIR_TOKEN_RATE_LIMIT = env.int("ESANTE_FHIR_TOKEN_RATE_LIMIT", default=30)
ESANTE_FHIR_TOKEN_RATE_WINDOW_SECONDS = env.int("ESANTE_FHIR_TOKEN_RATE_WINDOW_SECONDS", default=60)
# Requests refused for want of a valid token, per client network and window: beyond, 429 and one
# audit event per window (esante.fhir.throttling).
ESANTE_FHIR_REFUSAL_RATE_LIMIT = env.int("ESANTE_FHIR_REFUSAL_RATE_LIMIT", default=30)
ESANTE_FHIR_REFUSAL_RATE_WINDOW_SECONDS = env.int("ESANTE_FHIR_REFUSAL_RATE_WINDOW_SECONDS", default=60)
ESANTE_FHIR_PAGE_SIZE = 20
ESANTE_FHIR_MAX_PAGE_SIZE = 100
AUTHLIB_OAUTH2_PROVIDER = {
    "refresh_token_generator": True,
    "token_expires_in": {
        "authorization_code": ESANTE_FHIR_TOKEN_SECONDS,
        "refresh_token": ESANTE_FHIR_TOKEN_SECONDS,
        "client_credentials": ESANTE_FHIR_TOKEN_SECONDS,
    },
}
if not HTTPS:
    # Authlib refuses plain-HTTP OAuth unless told: the demo and the tests run without TLS.
    os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")
