import logging
import os
import subprocess
import sys

import pytest
from django.test import Client, override_settings

from esante.core.logging import scrub
from esante.core.services import DemoRefused, demo_check_allowed, demo_load
from esante.patients.models import Patient


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


def test_production_start_without_secret_key_stops_with_a_clear_message(tmp_path: object) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESANTE_")}
    env.update({"ESANTE_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "esante.settings"})
    result = subprocess.run(
        [sys.executable, "-m", "esante.cli", "check"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "ESANTE_SECRET_KEY is not set" in result.stderr


@pytest.mark.django_db
def test_demo_refuses_production_settings() -> None:
    with override_settings(PRODUCTION=True), pytest.raises(DemoRefused, match="production"):
        demo_check_allowed()
    assert not Patient.objects.exists()


@pytest.mark.django_db
def test_demo_refuses_a_database_with_real_data() -> None:
    Patient.objects.create(
        matricule="1904112000166",
        birth_name="PIG",
        first_names="Peppa",
        birth_date="1904-11-20",
        sex="F",
        platform_identifier="1700000151",
    )
    with pytest.raises(DemoRefused, match="pas celles de la démonstration"):
        demo_load(synthetic=10)
    assert Patient.objects.count() == 1


@pytest.mark.django_db
def test_demo_is_idempotent_and_has_the_guide_patient() -> None:
    first = demo_load(synthetic=200)
    second = demo_load(synthetic=200)
    assert (first.patients_created, second.patients_created, second.already_loaded) == (201, 0, True)
    peppa = Patient.objects.get(matricule="1904112000166")
    assert (peppa.birth_name, peppa.first_names, peppa.sex, peppa.taux) == ("PIG", "Peppa", "F", 100)
    assert (peppa.dossier_number, peppa.platform_identifier) == ("1664927202", "1700000151")
    assert Patient.objects.exclude(usage_name="").exists()
    assert (
        Patient.objects.filter(birth_name__contains="ç").exists()
        or Patient.objects.filter(first_names__regex=r"[éèçãíóáú]").exists()
    )


def test_csp_lets_forms_reach_the_certificate_origin_only(client: Client, settings: object) -> None:
    settings.ESANTE_CERTIFICATE_ORIGIN = "https://certificat.example.lu"  # type: ignore[attr-defined]
    policy = client.get("/")["Content-Security-Policy"]
    assert "form-action 'self' https://certificat.example.lu;" in policy
    settings.ESANTE_CERTIFICATE_ORIGIN = ""  # type: ignore[attr-defined]
    assert "form-action 'self';" in client.get("/")["Content-Security-Policy"]
