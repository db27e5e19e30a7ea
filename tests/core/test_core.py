import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from esante.core.logging import scrub


@pytest.mark.django_db
def test_landing_page_of_the_guide(client: Client) -> None:
    page = client.get("/").content.decode()
    assert "Je suis un professionnel" in page
    assert "(+352) 27 12 50 18 33" in page and "helpdesk@esante.lu" in page
    professional = client.get("/professionnel/").content.decode()
    assert "J&#x27;active mon compte" in professional or "J'active mon compte" in professional


def test_security_headers(client: Client) -> None:
    response = client.get("/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


@pytest.mark.django_db
def test_healthz(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok", "database": "ok"}


def test_healthz_reports_unreachable_database(client: Client) -> None:
    # No database access is allowed in this test: the connection attempt fails like a dead server.
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["database"] == "unreachable"


@pytest.mark.django_db
def test_request_log_never_carries_query_strings_or_secrets(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="esante.request"):
        client.get("/?code=123456&matricule=1904112000166")
        client.post("/healthz", {"password": "hunter2-very-secret"})
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "GET / 200" in text and "POST /healthz 405" in text
    for secret in ("123456", "1904112000166", "hunter2"):
        assert secret not in text


def test_scrub_masks_secrets() -> None:
    assert scrub("password=abc&code=123456&x=1") == "password=[masqué]&code=[masqué]&x=1"


def esante_start(tmp_path: Path, *args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    """``esante ARGS`` in a fresh process with only these ESANTE_ variables (none of the suite's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESANTE_")}
    env.update({"ESANTE_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "esante.settings", **variables})
    return subprocess.run(  # noqa: S603 - our own command, fixed arguments
        [sys.executable, "-m", "esante.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


PRODUCTION_KEY = "k" * 32
PRODUCTION_DELIVERY = {
    "ESANTE_SECRET_KEY": PRODUCTION_KEY,
    "ESANTE_EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
    "ESANTE_SMS_BACKEND": "esante.accounts.delivery.HttpSmsBackend",
    "ESANTE_SMS_GATEWAY_URL": "https://sms.example.lu/send",
}
SHOW_SECURITY = (
    "from django.conf import settings as s; print(s.PRODUCTION, s.SESSION_COOKIE_SECURE, "
    "s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_NAME, s.CSRF_COOKIE_NAME, s.SECURE_HSTS_SECONDS, "
    "s.SECURE_PROXY_SSL_HEADER, s.SECURE_SSL_REDIRECT)"
)


def test_production_start_without_secret_key_stops_with_a_clear_message(tmp_path: Path) -> None:
    result = esante_start(tmp_path, "check")
    assert result.returncode == 2
    assert "ESANTE_SECRET_KEY is not set" in result.stderr


def test_short_secret_key_is_refused(tmp_path: Path) -> None:
    result = esante_start(tmp_path, "check", **(PRODUCTION_DELIVERY | {"ESANTE_SECRET_KEY": "k" * 31}))
    assert result.returncode == 2
    assert "ESANTE_SECRET_KEY is too short (31 characters; at least 32" in result.stderr
    assert "secrets.token_urlsafe(50)" in result.stderr  # how to make one
    # Not only in production: a short key given to the demo is refused too.
    assert esante_start(tmp_path, "check", ESANTE_DEMO="1", ESANTE_SECRET_KEY="short").returncode == 2


def test_production_refuses_the_file_outbox_unless_allowed(tmp_path: Path) -> None:
    result = esante_start(tmp_path, "check", ESANTE_SECRET_KEY=PRODUCTION_KEY)
    assert result.returncode == 2
    assert "ESANTE_EMAIL_BACKEND and ESANTE_SMS_BACKEND use the file backend" in result.stderr
    assert "ESANTE_ALLOW_FILE_OUTBOX=1" in result.stderr
    only_sms = PRODUCTION_DELIVERY | {"ESANTE_SMS_BACKEND": "esante.accounts.delivery.FileSmsBackend"}
    result = esante_start(tmp_path, "check", **only_sms)
    assert result.returncode == 2 and "ESANTE_SMS_BACKEND use the file backend" in result.stderr
    allowed = esante_start(tmp_path, "check", ESANTE_SECRET_KEY=PRODUCTION_KEY, ESANTE_ALLOW_FILE_OUTBOX="1")
    assert allowed.returncode == 0, allowed.stderr
    assert esante_start(tmp_path, "check", **PRODUCTION_DELIVERY).returncode == 0


def test_production_defaults_to_https(tmp_path: Path) -> None:
    result = esante_start(tmp_path, "shell", "--no-imports", "-c", SHOW_SECURITY, **PRODUCTION_DELIVERY)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "True", "True", "True", "__Host-sessionid", "__Host-csrftoken", "31536000",
        "('HTTP_X_FORWARDED_PROTO',", "'https')", "True",
    ]  # fmt: skip
    # Still off when an operator says so explicitly.
    result = esante_start(
        tmp_path, "shell", "--no-imports", "-c", SHOW_SECURITY, ESANTE_HTTPS="0", **PRODUCTION_DELIVERY
    )
    assert result.stdout.split() == ["True", "False", "False", "sessionid", "csrftoken", "0", "None", "False"]


def test_a_leftover_demo_key_does_not_make_a_demo(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_text("generated-by-an-earlier-esante-demo-" + "x" * 20)
    result = esante_start(tmp_path, "check")
    assert result.returncode == 2
    assert "ESANTE_SECRET_KEY is not set" in result.stderr and "ESANTE_DEMO=1" in result.stderr
    show = "from django.conf import settings as s; print(s.DEMO_MODE, s.PRODUCTION, s.SECRET_KEY[:9])"
    result = esante_start(tmp_path, "shell", "--no-imports", "-c", show, ESANTE_DEMO="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False", "generated"]


def test_csp_lets_forms_reach_the_certificate_origin_only(client: Client, settings: object) -> None:
    settings.ESANTE_CERTIFICATE_ORIGIN = "https://certificat.example.lu"  # type: ignore[attr-defined]
    policy = client.get("/")["Content-Security-Policy"]
    assert "form-action 'self' https://certificat.example.lu;" in policy
    settings.ESANTE_CERTIFICATE_ORIGIN = ""  # type: ignore[attr-defined]
    assert "form-action 'self';" in client.get("/")["Content-Security-Policy"]


def test_verification_codes_are_masked_in_the_request_log() -> None:
    from esante.core.middleware import loggable_path

    assert loggable_path("/verifier/TS7RGGDCETMINAZDYLO2WGTIYA/") == "/verifier/[code]/"
    assert loggable_path("/verifier/") == "/verifier/"
    assert loggable_path("/edocuments/") == "/edocuments/"


def test_the_document_storage_setting(tmp_path: Path) -> None:
    demo = {"ESANTE_DEMO": "1"}
    bogus = esante_start(tmp_path, "check", **demo, ESANTE_STORAGE="ftp")
    assert bogus.returncode == 2 and "ESANTE_STORAGE must be filesystem or s3, not 'ftp'" in bogus.stderr
    no_bucket = esante_start(tmp_path, "check", **demo, ESANTE_STORAGE="s3")
    assert no_bucket.returncode == 2 and "ESANTE_STORAGE=s3 needs ESANTE_S3_BUCKET" in no_bucket.stderr
    secret = "s3-secret-that-must-not-be-printed"
    half = esante_start(
        tmp_path,
        "check",
        **demo,
        ESANTE_STORAGE="s3",
        ESANTE_S3_BUCKET="b",
        ESANTE_S3_SECRET_ACCESS_KEY=secret,
    )
    assert half.returncode == 2 and "go together" in half.stderr and secret not in half.stderr
    show = (
        "from django.core.files.storage import storages; d = storages['default']; "
        "print(type(d).__name__, d.bucket_name, d.endpoint_url, d.region_name, d.default_acl, "
        "d.file_overwrite)"
    )
    configured = esante_start(
        tmp_path,
        "shell",
        "-c",
        show,
        **demo,
        ESANTE_STORAGE="s3",
        ESANTE_S3_BUCKET="esante-documents",
        ESANTE_S3_ENDPOINT_URL="http://127.0.0.1:9",
        ESANTE_S3_REGION="eu-west-1",
        ESANTE_S3_ACCESS_KEY_ID="AKIAEXAMPLE",
        ESANTE_S3_SECRET_ACCESS_KEY=secret,
    )
    assert configured.returncode == 0, configured.stderr
    assert configured.stdout.splitlines()[-1].split() == [
        "S3DocumentStorage", "esante-documents", "http://127.0.0.1:9", "eu-west-1", "None", "False",
    ]  # fmt: skip
    assert secret not in configured.stdout + configured.stderr
    # The filesystem stays the default.
    default = esante_start(tmp_path, "shell", "-c", "from django.conf import settings as s; "
                           "print(s.STORAGES['default']['BACKEND'])", **demo)  # fmt: skip
    assert default.stdout.splitlines()[-1] == "django.core.files.storage.FileSystemStorage"
