"""Settings, read from the environment (see README, "Configuration").

Fails fast: a non-debug, non-demo start-up without ``ESANTE_SECRET_KEY`` stops with a clear message.
"""

import os
import secrets
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

env = environ.Env()

PACKAGE_DIR = Path(__file__).resolve().parent

DEBUG = env.bool("ESANTE_DEBUG", default=False)
DEMO_MODE = env.bool("ESANTE_DEMO", default=False)

DATA_DIR = Path(env.str("ESANTE_DATA_DIR", default="var")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    key = env.str("ESANTE_SECRET_KEY", default="")
    if key:
        return key
    key_file = DATA_DIR / "secret_key"
    if not (DEBUG or DEMO_MODE or key_file.exists()):
        raise ImproperlyConfigured(
            "ESANTE_SECRET_KEY is not set. Set it to a long random value (for example the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`) before starting the platform; "
            "only `esante demo` or ESANTE_DEBUG=1 generate one."
        )
    if not key_file.exists():
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(50))
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
# A data dir holding a generated key is a demo data dir: operator commands work on it as demo.
DEMO_MODE = DEMO_MODE or (not env.str("ESANTE_SECRET_KEY", default="") and (DATA_DIR / "secret_key").exists())
# Production: a secret key was given explicitly and debug is off. The demo refuses to run then.
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
    "esante.core",
    "esante.accounts",
    "esante.patients",
    "esante.audit",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "esante.core.middleware.RequestLogMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
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
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("ESANTE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

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
TIME_ZONE = "Europe/Luxembourg"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [PACKAGE_DIR / "static"]
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(DATA_DIR / "documents")},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --- security headers and cookies -------------------------------------------------------------
HTTPS = env.bool("ESANTE_HTTPS", default=False)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env.int("ESANTE_SESSION_IDLE_SECONDS", default=30 * 60)
SESSION_SAVE_EVERY_REQUEST = True  # idle timeout: the cookie age restarts on each request
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
if HTTPS:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("ESANTE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("ESANTE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True

ESANTE_TRUSTED_PROXIES = env.list("ESANTE_TRUSTED_PROXIES", default=[])

# --- audit trail anchoring --------------------------------------------------------------------
# The signing key must live outside the database (and in production outside the data volume
# that the database shares): whoever can rewrite the database must not be able to re-sign heads.
AUDIT_SIGNING_KEY_FILE = Path(env.str("ESANTE_AUDIT_KEY_FILE", default=str(DATA_DIR / "audit" / "signing-key.pem")))
AUDIT_HEADS_FILE = Path(env.str("ESANTE_AUDIT_HEADS_FILE", default=str(DATA_DIR / "audit" / "heads.jsonl")))
AUDIT_ANCHOR_INTERVAL = env.int("ESANTE_AUDIT_ANCHOR_SECONDS", default=300)

# --- logging: one line per request, never a body, a query string, a code or a password ---------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"scrub": {"()": "esante.core.logging.ScrubSecretsFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["scrub"]}},
    "loggers": {
        "esante.request": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "esante": {"handlers": ["console"], "level": env.str("ESANTE_LOG_LEVEL", default="INFO")},
        # Django's own request logger repeats the full path of failing requests; ours is enough.
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}
