"""The gate's refusal contract (``tests.refusals``: the same states, the same world) against
every patient-scoped endpoint of the API, with a bearer token instead of a portal session.

For the API, "anonymous" is a request without a token (401, traced as ``api.request``) and an
inactive account a token whose professional is suspended (403, traced alike); every other
refusal is the same 404 OperationOutcome as a missing resource, traced under the endpoint's
action, with nothing of the patient in the answer and nothing written."""

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from esante.audit.models import AuditEvent
from esante.fhir.models import SoftwareClient, Token, token_digest
from esante.fhir.services import software_client_register
from tests.refusals import STATES, Request, World, _events_after, _written, make_world

from .conftest import USER_SCOPES, outcome_code


@dataclass(frozen=True)
class ApiEndpoint:
    name: str
    url: Callable[[Request], str]
    refusal_action: str
    method: str = "get"
    body: str | Callable[[Request], str] = ""
    content_type: str = ""
    #: States that are no refusal here: status and events of the answer.
    allowed: dict[str, tuple[int, list[tuple[str, str]]]] | None = None
    #: What the states of ``tests.refusals`` read: pharmacists use these endpoints; every
    #: profession may, so "wrong profession" is a pharmacist asking for a psychiatric report.
    profession: str = "pharmacist"
    wrong_profession: str = ""


def _declare_body() -> str:
    return (
        '{"resourceType": "Parameters", "parameter": [{"name": "motif", "valueString": "Soins"},'
        ' {"name": "conditionsAccepted", "valueBoolean": true}]}'
    )


def _dispense_body(r: Request) -> str:
    reference = f"MedicationRequest/{r.document.public_id}-1"
    return (
        '{"resourceType": "MedicationDispense", "status": "completed", "quantity": {"value": 1},'
        f' "authorizingPrescription": [{{"reference": "{reference}"}}]}}'
    )


def _withdraw_body(r: Request) -> str:
    return (
        f'{{"resourceType": "MedicationDispense", "id": "{_dispensation(r)}", "status": "entered-in-error",'
        ' "statusReasonCodeableConcept": {"text": "Erreur de saisie"}}'
    )


def _dispensation(r: Request) -> str:
    return str(r.dispensation.public_id)  # type: ignore[union-attr]


def _patient(r: Request) -> str:
    return str(r.document.patient.public_id)


ENDPOINTS = [
    ApiEndpoint("patient-read", lambda r: f"/fhir/R4/Patient/{_patient(r)}", "patient.read",
                allowed={"document_hidden": (200, [("patient.read", "success")]),
                         "wrong_profession": (200, [("patient.read", "success")])}),
    ApiEndpoint("declare-access", lambda r: f"/fhir/R4/Patient/{_patient(r)}/$declare-access",
                "access.dialog", method="post", body=_declare_body(), content_type="application/fhir+json",
                allowed={"document_hidden": (200, [("access.grant", "success")]),
                         "wrong_profession": (200, [("access.grant", "success")]),
                         "expired_grant": (200, [("access.grant", "success")]),
                         "revoked_grant": (200, [("access.grant", "success")])}),
    ApiEndpoint("document-search", lambda r: f"/fhir/R4/DocumentReference?patient={_patient(r)}",
                "document.search",
                allowed={"document_hidden": (200, [("document.search", "success")]),
                         "wrong_profession": (200, [("document.search", "success")])}),
    ApiEndpoint("prescription-search", lambda r: f"/fhir/R4/MedicationRequest?patient={_patient(r)}",
                "prescription.search",
                allowed={"document_hidden": (200, [("prescription.search", "success")]),
                         "wrong_profession": (200, [("prescription.search", "success")])}),
    ApiEndpoint("dispense", lambda r: "/fhir/R4/MedicationDispense", "prescription.dispense",
                method="post", body=_dispense_body, content_type="application/fhir+json"),
    ApiEndpoint("withdraw", lambda r: f"/fhir/R4/MedicationDispense/{_dispensation(r)}",
                "dispensation.withdraw", method="put", body=_withdraw_body,
                content_type="application/fhir+json",
                # A pharmacist with access, withdrawing another's dispensation: not the author.
                allowed={"wrong_profession": (403, [("dispensation.withdraw", "refused")])}),
    ApiEndpoint("document-read", lambda r: f"/fhir/R4/DocumentReference/{r.document.public_id}",
                "document.read"),
    ApiEndpoint("document-content", lambda r: f"/fhir/R4/DocumentReference/{r.document.public_id}/content",
                "document.content"),
]  # fmt: skip


def _bearer(software: SoftwareClient, request: Request) -> dict[str, str]:
    if request.actor is None:
        return {}
    value = secrets.token_urlsafe(32)
    Token.objects.create(
        client=software, user=request.actor.user, access_digest=token_digest(value),
        scope=" ".join(USER_SCOPES), issued_at=int(time.time()), expires_in=300,
    )  # fmt: skip
    return {"Authorization": f"Bearer {value}"}


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
@pytest.mark.parametrize("state", STATES, ids=lambda s: s.__name__)
def test_api_refusal(endpoint: ApiEndpoint, state: Callable[[World, Any], Request]) -> None:
    software, _ = software_client_register(
        name="Contrat", organisation="Tests", kind="interactive", scopes=USER_SCOPES,
        redirect_uris=["https://x.example/cb"], public=True,
    )  # fmt: skip
    world = make_world()
    asked = state(world, endpoint)
    headers = _bearer(software, asked)
    before = _written()
    start = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0
    client = Client(headers=headers)
    if endpoint.method in ("post", "put"):
        body = endpoint.body(asked) if callable(endpoint.body) else endpoint.body
        send = client.post if endpoint.method == "post" else client.put
        response = send(endpoint.url(asked), body, content_type=endpoint.content_type)
    else:
        response = client.get(endpoint.url(asked))
    body = response.content.decode(errors="replace")
    name = state.__name__
    if asked.secret_document is not None:
        assert asked.secret_document.title not in body
        assert str(asked.secret_document.public_id) not in body
    allowed = endpoint.allowed or {}
    if name in allowed:
        status, events = allowed[name]
        assert response.status_code == status, body
        assert _events_after(start) == events
        if status >= 400:  # a refusal of another kind: it wrote nothing but its own event either
            assert _written() == before
        return
    if name == "anonymous":
        status, events, code = 401, [("api.request", "refused")], "missing-token"
    elif name == "inactive_account":
        status, events, code = 403, [("api.request", "refused")], "insufficient-scope"
    else:
        status, events, code = 404, [(endpoint.refusal_action, "refused")], "not-found"
    assert response.status_code == status, (name, body)
    assert outcome_code(response) == code
    for secret in world.secrets():
        assert secret not in body, secret
    assert _written() == before
    assert _events_after(start) == events
    if status == 404:
        event = AuditEvent.objects.get(sequence__gt=start)
        assert event.actor == asked.actor.user  # type: ignore[union-attr]
        assert event.details["via"]["client"] == software.client_id
