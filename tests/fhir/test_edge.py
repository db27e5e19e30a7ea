"""The API's edge: CapabilityStatement, SMART discovery, and OperationOutcome for every error."""

from typing import Any

import pytest
from django.test import Client

from esante.audit.models import AuditEvent

from .conftest import outcome_code, validate


@pytest.mark.django_db
def test_metadata_is_a_valid_capability_statement_describing_smart() -> None:
    response = Client().get("/fhir/R4/metadata")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/fhir+json")
    body = response.json()
    statement = validate(body)
    assert statement.fhirVersion == "4.0.1"
    rest = body["rest"][0]
    assert rest["security"]["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    uris = {e["url"]: e["valueUri"] for e in rest["security"]["extension"][0]["extension"]}
    assert uris["token"] == "http://testserver/fhir/R4/auth/token"
    assert {r["type"] for r in rest["resource"]} >= {"Patient"}
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_smart_configuration() -> None:
    response = Client().get("/fhir/R4/.well-known/smart-configuration")
    assert response.status_code == 200
    body = response.json()
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert "private_key_jwt" in body["token_endpoint_auth_methods_supported"]
    assert body["authorization_endpoint"] == "http://testserver/fhir/R4/auth/authorize"
    assert body["management_endpoint"] == "http://testserver/edocuments/logiciels/"
    assert "client_credentials" in body["grant_types_supported"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("get", "/fhir/R4/", 405, "method-not-allowed"),
        ("get", "/fhir/R4/Nothing/1", 404, "not-found"),
        ("get", "/fhir/R4/%00%ff", 400, "invalid-characters"),
        ("get", "/fhir/R4/%ff%fe", 404, "not-found"),
        ("delete", "/fhir/R4/metadata", 405, "method-not-allowed"),
    ],
)
def test_every_error_is_an_operation_outcome(method: str, path: str, status: int, code: str) -> None:
    response = getattr(Client(), method)(path)
    assert response.status_code == status
    assert outcome_code(response) == code
    body: dict[str, Any] = response.json()
    assert body["issue"][0]["diagnostics"]  # French text for the person behind the software
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_the_openapi_description_lists_the_routes() -> None:
    response = Client().get("/fhir/R4/openapi.json")
    assert response.status_code == 200
    paths = set(response.json()["paths"])
    assert {"/fhir/R4/Patient/_search", "/fhir/R4/DocumentReference", "/fhir/R4/MedicationDispense"} <= paths
