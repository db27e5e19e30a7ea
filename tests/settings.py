"""Settings for the test suite: the platform's settings with a throw-away data dir and a fast hasher."""

import os
import tempfile

os.environ.setdefault("ESANTE_SECRET_KEY", "test-secret-key-not-for-production-" + "x" * 20)
os.environ.setdefault("ESANTE_DATA_DIR", tempfile.mkdtemp(prefix="esante-test-"))
# A secret key without debug or demo mode reads as production, which forces HTTPS and refuses the
# file outbox: the test client speaks plain HTTP and the tests read one-time codes from files.
os.environ.setdefault("ESANTE_HTTPS", "0")
os.environ.setdefault("ESANTE_ALLOW_FILE_OUTBOX", "1")

from esante.settings import *  # noqa: E402,F403
from esante.settings import DATA_DIR, DATABASES  # noqa: E402

# Argon2 is deliberately slow; tests hash many passwords.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory: transactional tests use several connections (threads) at once.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}

# The test suite sets a secret key but is not a production deployment.
PRODUCTION = False

# Jobs run at once, in the caller, once its transaction commits: tests drive the queue
# deterministically (``django_capture_on_commit_callbacks``); tests/core/test_jobs.py runs real
# consumers on the SQLite and Redis storages.
ESANTE_QUEUE = "immediate"

# The ``replica`` alias is a test mirror of the test database and the router sends nothing to it:
# the suite reads and writes the primary only, whatever ESANTE_REPLICA_DATABASE_URL says.
# tests/replica points the alias at a real hot standby and turns the routing on for its tests.
DATABASES["replica"] = {
    **{key: value for key, value in DATABASES.get("replica", DATABASES["default"]).items() if key != "TEST"},
    "TEST": {"MIRROR": "default"},
}
ESANTE_REPLICA = False
