"""CSRF on every route: a POST without the token is refused before any view runs.

The routes come from the URL conf (``routes.all_routes``): a route added later is covered here
without being listed. Each POST is tried as an anonymous visitor, as a logged-in professional
and as an operator with a session verified by a one-time code (the admin's routes), each time
without the CSRF token; each must answer 403 with Django's CSRF refusal and write nothing.
"""

import logging
from typing import Any

import pytest
from django.test import Client

from esante.access.models import AccessGrant, RecordOpening
from esante.accounts.models import Professional
from esante.audit.models import AuditEvent
from esante.dispensing.models import Dispensation
from esante.documents.models import Document
from esante.patients.models import Patient
from tests.access.factories import make_grant, make_patient, make_professional
from tests.conftest import otp_verified_login

from .routes import all_routes, concrete, sample_values

# The FHIR API and its token and revocation endpoints authenticate by bearer token or client
# credentials, never by a cookie, so no CSRF token guards them (a forged cross-site request
# carries no token); ``test_the_api_ignores_the_portal_session`` below holds them to that. The
# consent page (``fhir:authorize``) is a portal page and stays under the CSRF check.
ROUTES = [
    route
    for route in all_routes()
    if not route.pattern.startswith("fhir/R4/") or route.name == "fhir:authorize"
]
# Routes whose pattern is a regular expression the helper cannot fill (none among the portal's).
FILLABLE = [route for route in ROUTES if concrete(route, sample_values()) is not None]


def test_the_route_list_is_the_url_conf() -> None:
    names = {route.name for route in ROUTES}
    for expected in (
        "accounts:login",
        "accounts:login_code",
        "accounts:activation_step",
        "access:search",
        "access:dialog",
        "dispensing:dispense",
        "dispensing:withdraw",
        "verification:form",
        "set_language",
    ):
        assert expected in names
    assert any(route.pattern.startswith("operateurs/") for route in ROUTES)
    # Nothing silently dropped: every portal route can be filled in.
    assert [r.name for r in ROUTES if r not in FILLABLE and not r.pattern.startswith("operateurs/")] == []


def _written() -> tuple[int, ...]:
    return (
        AuditEvent.objects.count(),
        AccessGrant.objects.count(),
        RecordOpening.objects.count(),
        Dispensation.objects.count(),
        Document.objects.count(),
        Patient.objects.count(),
        Professional.objects.count(),
    )


@pytest.fixture
def cast(db: None) -> dict[str, Any]:
    patient = make_patient()
    pharmacist = make_professional("pharmacist")
    make_grant(pharmacist, patient)
    operator = make_professional("doctor")
    operator.user.is_staff = operator.user.is_superuser = True
    operator.user.save()
    return {"patient": patient, "pharmacist": pharmacist, "operator": operator}


def _clients(cast: dict[str, Any]) -> dict[str, Client]:
    anonymous = Client(enforce_csrf_checks=True)
    professional = Client(enforce_csrf_checks=True)
    professional.force_login(cast["pharmacist"].user)
    operator = Client(enforce_csrf_checks=True)
    otp_verified_login(operator, cast["operator"].user)
    return {"anonymous": anonymous, "professional": professional, "operator": operator}


@pytest.mark.django_db
def test_every_post_without_a_csrf_token_is_refused_and_writes_nothing(
    cast: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    values = sample_values(public_id=cast["patient"].public_id)
    clients = _clients(cast)
    before = _written()
    tried = 0
    for route in FILLABLE:
        path = concrete(route, values)
        assert path is not None
        for who, client in clients.items():
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="django.security.csrf"):
                response = client.post(path, {"matricule": cast["patient"].matricule, "motif": "x"})
            assert response.status_code == 403, (route.name, who, response.status_code)
            assert any("CSRF" in record.getMessage() for record in caplog.records), (route.name, who)
            assert cast["patient"].birth_name.encode() not in response.content
            tried += 1
    assert _written() == before
    assert tried == len(FILLABLE) * 3 >= 3 * 25


@pytest.mark.django_db
def test_the_same_post_with_the_token_reaches_the_view(cast: dict[str, Any]) -> None:
    """The refusal above is the CSRF check's, not a route that refuses every POST."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(cast["pharmacist"].user)
    page = client.get("/edocuments/recherche/")
    token = page.cookies["csrftoken"].value if "csrftoken" in page.cookies else None
    assert token, "the search page sets the CSRF cookie"
    response = client.post(
        "/edocuments/recherche/",
        {"matricule": cast["patient"].matricule, "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 200
    assert AuditEvent.objects.filter(action="patient.search").count() == 1


@pytest.mark.django_db
def test_the_api_ignores_the_portal_session(cast: dict[str, Any]) -> None:
    """A logged-in portal session is no credential for the API: without a bearer token every
    API route answers 401 (or, for the OAuth endpoints, an OAuth error), writing nothing else."""
    client = Client()
    client.force_login(cast["pharmacist"].user)
    patient = cast["patient"]
    before = _written()[1:]  # the audit trail gains the refusals (api.request), nothing else moves
    for method, path in [
        ("get", f"/fhir/R4/Patient/{patient.public_id}"),
        ("post", "/fhir/R4/Patient/_search"),
        ("post", f"/fhir/R4/Patient/{patient.public_id}/$declare-access"),
        ("get", f"/fhir/R4/DocumentReference?patient={patient.public_id}"),
    ]:
        response = getattr(client, method)(path)
        assert response.status_code == 401, path
        assert patient.birth_name.encode() not in response.content
    assert client.post("/fhir/R4/auth/token", {"grant_type": "client_credentials"}).status_code in (400, 401)
    assert _written()[1:] == before
    assert set(AuditEvent.objects.values_list("action", "outcome")) <= {
        ("api.request", "refused"),
        ("api.token", "refused"),
    }
