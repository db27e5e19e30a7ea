import datetime
import html
import re
import uuid
from typing import Any

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from freezegun import freeze_time

from esante.access.models import AccessGrant, PatientBlock, RecordOpening
from esante.accounts.models import Professional, User
from esante.audit.models import AuditEvent
from esante.patients.models import Patient
from tests.conftest import otp_verified_login

from .factories import make_grant, make_patient, make_professional

pytestmark = pytest.mark.django_db

SEARCH = reverse("access:search")


@pytest.fixture
def secret_patient(db: Any) -> Patient:
    """A patient whose identity strings appear nowhere else on the pages."""
    return make_patient("Zyxwaldor", "Quentinella", usage_name="Brambleton", dossier_number="9876543210")


def patient_data(patient: Patient) -> list[str]:
    return [
        patient.birth_name.upper(),
        patient.usage_name.upper(),
        patient.first_names,
        patient.matricule,
        patient.dossier_number,
        patient.platform_identifier,
    ]


def assert_no_patient_data(body: bytes, patient: Patient) -> None:
    page = html.unescape(body.decode())
    for value in patient_data(patient):
        if value:
            assert value not in page, value


def text(response: Any) -> str:
    return html.unescape(response.content.decode())


def login(client: Client, professional: Professional) -> Client:
    client.force_login(professional.user)
    return client


# --- the professional gate -----------------------------------------------------------------------


PAGES = ["access:my_patients", "access:recent_records", "access:search"]


@pytest.mark.parametrize("name", PAGES)
def test_anonymous_is_sent_to_login(client: Client, name: str) -> None:
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert "login" in response["Location"] or "connexion" in response["Location"]


@pytest.mark.parametrize("name", PAGES)
def test_user_without_active_professional_gets_403(client: Client, name: str) -> None:
    client.force_login(User.objects.create_user(username="operator"))
    assert client.get(reverse(name)).status_code == 403
    registered = make_professional(state=Professional.State.REGISTERED)
    client.force_login(registered.user)
    response = client.get(reverse(name))
    assert response.status_code == 403
    assert "compte est actif" in text(response)


def test_inactive_professional_cannot_open_record(client: Client, secret_patient: Patient) -> None:
    suspended = make_professional("doctor", state=Professional.State.SUSPENDED)
    make_grant(suspended, secret_patient)
    response = login(client, suspended).get(reverse("documents:record", args=[secret_patient.public_id]))
    assert response.status_code == 403
    assert_no_patient_data(response.content, secret_patient)
    assert AuditEvent.objects.count() == 0


# --- tabs ----------------------------------------------------------------------------------------


def test_tabs_and_my_patients(client: Client, pharmacist: Professional, secret_patient: Patient) -> None:
    login(client, pharmacist)
    response = client.get(reverse("access:my_patients"))
    body = text(response)
    assert response.status_code == 200
    for label in ("Mes patients", "Mes derniers dossiers", "Recherche patient"):
        assert label in body
    assert_no_patient_data(response.content, secret_patient)
    make_grant(pharmacist, secret_patient)
    body = text(client.get(reverse("access:my_patients")))
    assert "ZYXWALDOR" in body
    assert "1 à 1 sur 1 éléments" in body
    assert reverse("documents:record", args=[secret_patient.public_id]) in body


def test_recent_records_tab(client: Client, pharmacist: Professional, secret_patient: Patient) -> None:
    grant = make_grant(pharmacist, secret_patient)
    RecordOpening.objects.create(professional=pharmacist, patient=secret_patient, grant=grant)
    body = text(login(client, pharmacist).get(reverse("access:recent_records")))
    assert "ZYXWALDOR" in body
    assert "Dernière ouverture" in body


# --- search --------------------------------------------------------------------------------------


def test_search_form_labels(client: Client, pharmacist: Professional) -> None:
    body = text(login(client, pharmacist).get(SEARCH))
    for label in ("Nom", "Prénoms", "Numéro assuré", "Date de naissance", "VALIDER", 'method="post"'):
        assert label in body


COLUMNS = [
    "Nom de naissance",
    "Nom d'usage",
    "Nom",
    "Prénom",
    "Date de naissance",
    "Sexe",
    "InsC",
    "Taux",
    "N° dossier",
    "Identifiant",
    "Etat dossier",
    "Alertes",
    "Actions",
    "Parcours",
]


def test_search_by_matricule(client: Client, pharmacist: Professional, secret_patient: Patient) -> None:
    response = login(client, pharmacist).post(SEARCH, {"matricule": secret_patient.matricule})
    body = text(response)
    assert response.status_code == 200
    for column in COLUMNS:
        assert f">{column}</th>" in body, column
    assert "1 à 1 sur 1 éléments" in body
    assert "ZYXWALDOR" in body and "BRAMBLETON" in body
    assert "Afficher" in body and "éléments" in body
    # No grant yet: the name leads to the access dialog, and no URL carries the matricule.
    assert reverse("access:dialog", args=[secret_patient.public_id]) in body
    assert f"/{secret_patient.matricule}" not in body
    event = AuditEvent.objects.get()
    assert (event.action, event.outcome, event.actor) == ("patient.search", "success", pharmacist.user)
    assert event.details["criteria"]["matricule"] == secret_patient.matricule
    assert event.details["results"] == 1
    assert event.details["shown"] == [str(secret_patient.public_id)]


def test_search_by_name_is_accent_and_case_insensitive(client: Client, pharmacist: Professional) -> None:
    muller = make_patient("MULLER", "Anna")
    goncalves = make_patient("Gonçalves", "Rui", usage_name="")
    login(client, pharmacist)
    body = text(client.post(SEARCH, {"name": "Mü", "first_name": "a"}))
    assert muller.matricule in body and goncalves.matricule not in body
    body = text(client.post(SEARCH, {"name": "gonç", "birth_date": "20/11/1904"}))
    assert goncalves.matricule in body and muller.matricule not in body
    assert AuditEvent.objects.filter(action="patient.search").count() == 2


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"name": "D"},
        {"name": "Dupont"},
        {"first_name": "Jean", "birth_date": "1980-01-01"},
        {"name": "D", "first_name": "J"},
    ],
)
def test_search_without_enough_criteria_explains_and_writes_nothing(
    client: Client, pharmacist: Professional, data: dict[str, str]
) -> None:
    make_patient("Dupont", "Jean")
    response = login(client, pharmacist).post(SEARCH, data)
    assert response.status_code == 200
    assert "Précisez la recherche" in text(response)
    assert "DUPONT" not in text(response)
    assert AuditEvent.objects.count() == 0


def test_search_bad_matricule_error(client: Client, pharmacist: Professional) -> None:
    response = login(client, pharmacist).post(SEARCH, {"matricule": "1904112000167"})
    assert "chiffres de contrôle" in text(response)
    assert AuditEvent.objects.count() == 0


@override_settings(ESANTE_SEARCH_MAX_RESULTS=3)
def test_search_stops_at_cap_and_asks_to_refine(client: Client, pharmacist: Professional) -> None:
    for i in range(5):
        make_patient("Dupont", f"Jean{i}")
    body = text(login(client, pharmacist).post(SEARCH, {"name": "dup", "first_name": "j"}))
    assert "affinez votre recherche" in body
    assert "1 à 3 sur 3 éléments" in body
    event = AuditEvent.objects.get()
    assert event.details["results"] == 3 and event.details["refine"] is True


def test_search_pagination(client: Client, pharmacist: Professional) -> None:
    for i in range(12):
        make_patient("Dupont", f"Jean{i:02d}")
    login(client, pharmacist)
    body = text(client.post(SEARCH, {"name": "dup", "first_name": "j", "page_size": "10", "page": "2"}))
    assert "11 à 12 sur 12 éléments" in body
    body = text(client.post(SEARCH, {"name": "dup", "first_name": "j", "page_size": "7"}))
    assert "1 à 12 sur 12 éléments" in body  # an unknown page size falls back to 25


def write_transactions(queries: CaptureQueriesContext) -> list[list[str]]:
    """The writes of the captured queries, grouped by the transaction (outermost atomic block, or
    autocommit statement) that made them; only transactions that wrote."""
    groups: list[list[str]] = []
    depth, current = 0, []
    for query in queries.captured_queries:
        sql = query["sql"].lstrip()
        verb = sql.split(None, 1)[0].upper()
        if verb == "SAVEPOINT":
            depth += 1
        elif verb == "RELEASE":  # also after ROLLBACK TO SAVEPOINT
            depth -= 1
            if depth == 0 and current:
                groups.append(current)
                current = []
        elif verb in {"INSERT", "UPDATE", "DELETE"}:
            if depth:
                current.append(sql)
            else:
                groups.append([sql])
    return groups + ([current] if current else [])


def test_a_search_writes_once_its_audit_event(
    client: Client, pharmacist: Professional, secret_patient: Patient
) -> None:
    login(client, pharmacist).get(SEARCH)
    with CaptureQueriesContext(connection) as queries:
        response = client.post(SEARCH, {"matricule": secret_patient.matricule})
    assert response.status_code == 200 and "ZYXWALDOR" in text(response)
    [transaction] = write_transactions(queries)
    assert [sql.split('"')[1] for sql in transaction] == ["audit_auditevent", "audit_auditchainhead"]
    # The access dialog opens for the patient the search showed, read from that event.
    assert client.get(reverse("access:dialog", args=[secret_patient.public_id])).status_code == 200


def test_a_search_over_the_limit_writes_once_its_refusal(
    client: Client, pharmacist: Professional, secret_patient: Patient, settings: Any
) -> None:
    settings.ESANTE_SEARCH_RATE_LIMIT = 1
    login(client, pharmacist).post(SEARCH, {"matricule": secret_patient.matricule})
    with CaptureQueriesContext(connection) as queries:
        response = client.post(SEARCH, {"matricule": secret_patient.matricule})
    assert response.status_code == 429 and "trop de recherches" in text(response)
    [transaction] = write_transactions(queries)
    assert [sql.split('"')[1] for sql in transaction] == ["audit_auditevent", "audit_auditchainhead"]
    assert AuditEvent.objects.order_by("-sequence").values_list("outcome", flat=True)[0] == "refused"


@override_settings(ESANTE_SEARCH_RATE_LIMIT=2)
def test_search_rate_limit(client: Client, pharmacist: Professional, secret_patient: Patient) -> None:
    login(client, pharmacist)
    for _ in range(2):
        assert client.post(SEARCH, {"matricule": secret_patient.matricule}).status_code == 200
    response = client.post(SEARCH, {"matricule": secret_patient.matricule})
    assert response.status_code == 429
    assert "trop de recherches" in text(response)
    # The typed matricule is echoed in its field; nothing of the patient is shown.
    assert "ZYXWALDOR" not in text(response) and "Quentinella" not in text(response)
    assert [e[1] for e in AuditEvent.objects.order_by("sequence").values_list("action", "outcome")] == [
        "success",
        "success",
        "refused",
    ]
    # Another professional is not limited by the first one's searches.
    other = make_professional("doctor")
    assert login(client, other).post(SEARCH, {"matricule": secret_patient.matricule}).status_code == 200


def test_search_query_count_is_constant(client: Client, pharmacist: Professional) -> None:
    login(client, pharmacist).get(SEARCH)  # the session's first activity is recorded here
    make_patient("Dupont", "Jean")

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            client.post(SEARCH, {"name": "dup", "first_name": "j", "page_size": "100"})
        return len(queries)

    one = count()
    for i in range(30):
        patient = make_patient("Dupont", f"Jean{i}")
        grant = make_grant(pharmacist, patient)
        RecordOpening.objects.create(professional=pharmacist, patient=patient, grant=grant)
    assert count() == one


def _reads(queries: Any) -> list[str]:
    """The table of each SELECT's first column, in order; counts named as such."""
    reads = []
    for query in queries.captured_queries:
        sql = query["sql"]
        if sql.startswith("SELECT"):
            table = sql.split('"', 2)[1]
            reads.append(f"count {table}" if sql.startswith("SELECT COUNT(*)") else table)
    return reads


FLOOR = ["django_session", "accounts_user", "accounts_professional"]
# The search's count and trace, under the professional's row lock: one count, the chain head.
COUNTED = ["accounts_professional", "count audit_auditevent", "audit_auditchainhead"]


@pytest.mark.parametrize(
    ("criteria", "search_reads"),
    [
        # One query: the row with the professional's columns and the capped count.
        ({"matricule": "{matricule}"}, ["patients_patient"]),
        # Each part's keys with its capped count (birth name, usage name), then the page's rows.
        ({"name": "dup", "first_name": "j"}, ["patients_patient"] * 3),
    ],
)
def test_search_reads(
    client: Client, pharmacist: Professional, criteria: dict[str, str], search_reads: list[str]
) -> None:
    patient = make_patient("Dupont", "Jean")
    make_grant(pharmacist, patient)
    make_patient("Martin", "Jeanne", usage_name="Dupuis")
    login(client, pharmacist).get(SEARCH)
    with CaptureQueriesContext(connection) as bare:
        client.get(SEARCH)
    assert _reads(bare) == FLOOR and len(bare) == 3
    data = {key: value.format(matricule=patient.matricule) for key, value in criteria.items()}
    with CaptureQueriesContext(connection) as queries:
        response = client.post(SEARCH, data)
    assert response.status_code == 200 and "DUPONT" in text(response)
    assert _reads(queries) == FLOOR + search_reads + COUNTED, _reads(queries)
    [transaction] = write_transactions(queries)
    assert [sql.split('"')[1] for sql in transaction] == ["audit_auditevent", "audit_auditchainhead"]


def test_search_shows_alerts_and_parcours(client: Client, pharmacist: Professional) -> None:
    closed = make_patient("Dupont", "Jean", dossier_state=Patient.DossierState.CLOSED)
    blocked = make_patient("Dupont", "Jeanne")
    PatientBlock.objects.create(patient=blocked, professional=pharmacist)
    granted = make_patient("Dupont", "Jacques")
    make_grant(pharmacist, granted)
    emergency = make_patient("Dupont", "Julie")
    make_grant(make_professional("doctor"), emergency, mode=AccessGrant.Mode.EMERGENCY, hours=2)
    body = text(login(client, pharmacist).post(SEARCH, {"name": "dupont", "first_name": "j"}))
    assert "Dossier fermé" in body
    assert "Accès refusé par le patient" in body
    assert "Accès en urgence en cours" in body
    assert "Accès jusqu'au" in body or "Accès jusqu'au" in body
    assert reverse("documents:record", args=[granted.public_id]) in body
    assert reverse("access:dialog", args=[closed.public_id]) in body


def test_search_requires_csrf(pharmacist: Professional, secret_patient: Patient) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(pharmacist.user)
    response = client.post(SEARCH, {"matricule": secret_patient.matricule})
    assert response.status_code == 403
    assert AuditEvent.objects.count() == 0


# --- access dialog -------------------------------------------------------------------------------

DIALOG_TEXTS = [
    "Accès au dossier du patient",
    "Vous n'avez pas le droit d'accéder au dossier de ce patient",
    "Conditions d'accès au dossier eDocument du patient",
    "Je participe directement à la prise en charge du patient et j'ai un lien thérapeutique avec lui.",
    "J'accède uniquement aux informations strictement nécessaires à la réalisation de cette prise en charge.",
    "J'informe mon patient préalablement à mon accès sur les conditions d'utilisation de ses données "
    "et de son droit d'opposition.",
    "Tout accès ou action est tracé.",
    "En savoir plus",
    "J'accède au dossier du patient en engageant ma responsabilité.",
    "Motif : *",
    "J'accède en lecture seule aux documents dont je suis l'auteur",
    "J'accepte les conditions d'accès",
]


def dialog_url(patient: Patient) -> str:
    return reverse("access:dialog", args=[patient.public_id])


def found(client: Client, professional: Professional, patient: Patient) -> Client:
    """Logs in and finds the patient as the guide does: a search by "Numéro assuré"."""
    response = login(client, professional).post(SEARCH, {"matricule": patient.matricule})
    assert response.status_code == 200 and dialog_url(patient) in response.content.decode()
    return client


def trail() -> list[tuple[str, str]]:
    """The audit trail after the search that found the patient."""
    return list(
        AuditEvent.objects.exclude(action="patient.search")
        .order_by("sequence")
        .values_list("action", "outcome")
    )


def record_url(patient: Patient) -> str:
    return reverse("documents:record", args=[patient.public_id])


def test_dialog_shows_guide_text(client: Client, pharmacist: Professional, secret_patient: Patient) -> None:
    response = found(client, pharmacist, secret_patient).get(dialog_url(secret_patient))
    body = text(response)
    assert response.status_code == 200
    for expected in DIALOG_TEXTS:
        assert expected in body, expected
    assert "csrfmiddlewaretoken" in body
    assert "bris de glace" not in body  # pharmacists do not break the glass
    assert_no_patient_data(response.content, secret_patient)
    assert trail() == []


def test_dialog_offers_emergency_to_doctors(
    client: Client, doctor: Professional, secret_patient: Patient
) -> None:
    assert "bris de glace" in text(found(client, doctor, secret_patient).get(dialog_url(secret_patient)))


def test_en_savoir_plus(client: Client) -> None:
    response = client.get(reverse("access:access_rules"))
    assert response.status_code == 200
    assert "24 heures" in text(response)


def test_care_access_then_record(client: Client, pharmacist: Professional, secret_patient: Patient) -> None:
    found(client, pharmacist, secret_patient)
    response = client.post(
        dialog_url(secret_patient),
        {"mode": "care", "motif_choice": "dispensation", "motif_text": "", "accept_conditions": "on"},
    )
    assert response.status_code == 302
    assert response["Location"] == record_url(secret_patient)
    grant = AccessGrant.objects.get()
    assert (grant.mode, grant.motif) == ("care", "Délivrance de médicaments")
    response = client.get(record_url(secret_patient))
    body = text(response)
    assert response.status_code == 200
    assert "BRAMBLETON Quentinella" in body
    assert "20/11/1904" in body and secret_patient.matricule in body and "ans)" in body
    assert RecordOpening.objects.get().grant == grant
    assert trail() == [("access.grant", "success"), ("record.open", "success")]
    # With a current access, the dialog leads straight to the record.
    assert client.get(dialog_url(secret_patient))["Location"] == record_url(secret_patient)


def test_own_documents_access(client: Client, doctor: Professional, secret_patient: Patient) -> None:
    found(client, doctor, secret_patient)
    response = client.post(dialog_url(secret_patient), {"mode": "own-documents", "accept_conditions": "on"})
    assert response.status_code == 302
    body = text(client.get(record_url(secret_patient)))
    assert "Lecture seule des documents dont vous êtes l'auteur" in body


def test_own_documents_access_can_be_upgraded_to_care(
    client: Client, doctor: Professional, secret_patient: Patient
) -> None:
    found(client, doctor, secret_patient)
    client.post(dialog_url(secret_patient), {"mode": "own-documents", "accept_conditions": "on"})
    # The dialog stays open: it says what the current access is and offers a care access.
    response = client.get(dialog_url(secret_patient))
    body = text(response)
    assert response.status_code == 200
    assert "limité à la lecture seule des documents dont vous êtes l'auteur" in body
    assert "Vous n'avez pas le droit d'accéder au dossier de ce patient" not in body
    assert "J'accède au dossier du patient en engageant ma responsabilité." in body
    assert_no_patient_data(response.content, secret_patient)
    response = client.post(
        dialog_url(secret_patient),
        {"mode": "care", "motif_choice": "consultation", "accept_conditions": "on"},
    )
    assert response.status_code == 302
    assert response["Location"] == record_url(secret_patient)
    assert sorted(AccessGrant.objects.values_list("mode", flat=True)) == ["care", "own-documents"]
    assert "Lecture seule des documents dont vous êtes l'auteur" not in text(
        client.get(record_url(secret_patient))
    )
    # Now that the whole record is open, the dialog leads straight to it.
    assert client.get(dialog_url(secret_patient))["Location"] == record_url(secret_patient)
    assert trail() == [("access.grant", "success"), ("access.grant", "success"), ("record.open", "success")]


def test_emergency_access_leads_straight_to_the_record(
    client: Client, doctor: Professional, secret_patient: Patient
) -> None:
    make_grant(doctor, secret_patient, mode=AccessGrant.Mode.EMERGENCY, hours=2)
    response = login(client, doctor).get(dialog_url(secret_patient))
    assert response.status_code == 302
    assert response["Location"] == record_url(secret_patient)


def test_emergency_access_by_doctor(client: Client, doctor: Professional, secret_patient: Patient) -> None:
    found(client, doctor, secret_patient)
    response = client.post(
        dialog_url(secret_patient),
        {
            "mode": "emergency",
            "motif_text": "Patient inconscient admis aux urgences",
            "accept_conditions": "on",
        },
    )
    assert response.status_code == 302
    assert AccessGrant.objects.get().mode == "emergency"
    assert "Accès en urgence" in text(client.get(record_url(secret_patient)))


@pytest.mark.parametrize(
    ("data", "status", "message", "action", "reason"),
    [
        (
            {"mode": "care", "accept_conditions": "on"},
            400,
            "Le motif est obligatoire.",
            "access.grant",
            "motif_missing",
        ),
        (
            {"mode": "care", "motif_choice": "other", "accept_conditions": "on"},
            400,
            "Le motif est obligatoire.",
            "access.grant",
            "motif_missing",
        ),
        (
            {"mode": "care", "motif_choice": "consultation"},
            400,
            "Vous devez accepter les conditions d'accès.",
            "access.grant",
            "conditions_not_accepted",
        ),
        # Not offered to a pharmacist, but a forged POST reaches the service: refused and traced.
        (
            {"mode": "emergency", "motif_text": "Urgence vitale immédiate", "accept_conditions": "on"},
            403,
            "L'accès en urgence n'est pas ouvert à votre profession.",
            "access.emergency",
            "emergency_not_allowed",
        ),
    ],
)
def test_dialog_refusals(
    client: Client,
    pharmacist: Professional,
    secret_patient: Patient,
    data: dict[str, str],
    status: int,
    message: str,
    action: str,
    reason: str,
) -> None:
    response = found(client, pharmacist, secret_patient).post(dialog_url(secret_patient), data)
    assert response.status_code == status
    assert message in text(response)
    assert_no_patient_data(response.content, secret_patient)
    assert AccessGrant.objects.count() == 0
    events = list(AuditEvent.objects.exclude(action="patient.search"))
    assert [(e.action, e.outcome, e.details["reason"], e.patient) for e in events] == [
        (action, "refused", reason, secret_patient)
    ]


def test_dialog_hides_emergency_from_pharmacists_even_after_a_forged_post(
    client: Client, pharmacist: Professional, secret_patient: Patient
) -> None:
    response = found(client, pharmacist, secret_patient).post(
        dialog_url(secret_patient),
        {"mode": "emergency", "motif_text": "Urgence vitale immédiate", "accept_conditions": "on"},
    )
    assert response.status_code == 403
    assert "bris de glace" not in text(response)
    assert 'value="emergency"' not in text(response)


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (Patient.DossierState.CLOSED, "Le dossier de ce patient est fermé"),
        (Patient.DossierState.OPPOSED, "Le patient s'est opposé à son dossier"),
        ("blocked", "Le patient a refusé que vous accédiez à son dossier"),
    ],
)
def test_dialog_on_closed_opposed_or_blocked_record(
    client: Client, doctor: Professional, secret_patient: Patient, state: str, message: str
) -> None:
    if state == "blocked":
        PatientBlock.objects.create(patient=secret_patient, professional=doctor)
    else:
        Patient.objects.filter(pk=secret_patient.pk).update(dossier_state=state)
    found(client, doctor, secret_patient)
    response = client.get(dialog_url(secret_patient))
    assert response.status_code == 200
    assert message in text(response)
    assert "motif_choice" not in text(response)
    response = client.post(
        dialog_url(secret_patient),
        {
            "mode": "emergency",
            "motif_text": "Patient inconscient admis aux urgences",
            "accept_conditions": "on",
        },
    )
    assert response.status_code == 403
    assert message in text(response)
    assert_no_patient_data(response.content, secret_patient)
    assert AccessGrant.objects.count() == 0
    assert trail() == [("access.emergency", "refused")]


# The CSRF token (htmx header, and the header's language switch) is masked anew on each page.
CSRF_TOKEN = re.compile(rb'"X-CSRFToken": "[^"]*"|name="csrfmiddlewaretoken" value="[^"]*"')


@pytest.mark.parametrize("method", ["get", "post"])
def test_dialog_for_a_patient_not_found_by_a_search_looks_like_a_missing_one(
    client: Client, pharmacist: Professional, secret_patient: Patient, method: str
) -> None:
    """An id guessed or copied, never shown to this professional: the same 404 as a random id."""
    login(client, pharmacist)
    data = {"mode": "care", "motif_choice": "dispensation", "accept_conditions": "on"}
    send = getattr(client, method)
    missing_id = uuid.uuid4()
    missing = send(reverse("access:dialog", args=[missing_id]), data)
    existing = send(dialog_url(secret_patient), data)
    record = client.get(record_url(secret_patient))
    assert missing.status_code == existing.status_code == record.status_code == 404
    assert CSRF_TOKEN.sub(b"", missing.content) == CSRF_TOKEN.sub(b"", existing.content)
    # The same page as every other patient-scoped refusal.
    assert CSRF_TOKEN.sub(b"", existing.content) == CSRF_TOKEN.sub(b"", record.content)
    assert "Ce dossier est introuvable ou vous n'y avez pas accès." in text(existing)
    assert_no_patient_data(existing.content, secret_patient)
    assert AccessGrant.objects.count() == 0
    events = list(AuditEvent.objects.order_by("sequence"))
    assert [(e.action, e.outcome, e.actor, e.patient, e.details["reason"]) for e in events] == [
        ("access.dialog", "refused", pharmacist.user, None, "unknown"),
        ("access.dialog", "refused", pharmacist.user, secret_patient, "not_found_by_search"),
        ("record.open", "refused", pharmacist.user, secret_patient, "no_grant"),
    ]
    assert [e.object_id for e in events[:2]] == [str(missing_id), str(secret_patient.public_id)]


def test_dialog_after_a_search_that_did_not_show_the_patient(
    client: Client, pharmacist: Professional, secret_patient: Patient
) -> None:
    other = make_patient("Other", "Person")
    found(client, pharmacist, other)
    assert client.get(dialog_url(other)).status_code == 200
    assert client.get(dialog_url(secret_patient)).status_code == 404
    # Another professional's search does not open it for this one either.
    found(Client(), make_professional("pharmacist"), secret_patient)
    assert client.get(dialog_url(secret_patient)).status_code == 404
    assert trail() == [("access.dialog", "refused")] * 2


def test_dialog_found_by_search_expires_with_the_search_window(
    client: Client, pharmacist: Professional, secret_patient: Patient, settings: Any
) -> None:
    start = timezone.now()
    with freeze_time(start):
        found(client, pharmacist, secret_patient)
    window = settings.ESANTE_SEARCH_RATE_WINDOW_SECONDS
    with freeze_time(start + datetime.timedelta(seconds=window + 1)):
        response = client.get(dialog_url(secret_patient))
    assert response.status_code == 404
    assert trail() == [("access.dialog", "refused")]


def test_dialog_shown_restarts_the_window_for_its_form(
    client: Client, pharmacist: Professional, secret_patient: Patient, settings: Any
) -> None:
    start = timezone.now()
    window = datetime.timedelta(seconds=settings.ESANTE_SEARCH_RATE_WINDOW_SECONDS)
    with freeze_time(start):
        found(client, pharmacist, secret_patient)
    with freeze_time(start + window * 0.9):
        assert client.get(dialog_url(secret_patient)).status_code == 200
    with freeze_time(start + window * 1.5):
        response = client.post(
            dialog_url(secret_patient),
            {"mode": "care", "motif_choice": "dispensation", "accept_conditions": "on"},
        )
    assert response.status_code == 302 and AccessGrant.objects.count() == 1
    assert trail() == [("access.grant", "success")]


@pytest.mark.parametrize("ended_days_ago", [1, 89])
def test_dialog_opens_for_a_recently_ended_grant_without_a_search(
    client: Client, doctor: Professional, secret_patient: Patient, ended_days_ago: int
) -> None:
    """ "Mes derniers dossiers" leads to the dialog once the access has expired."""
    now = timezone.now()
    make_grant(
        doctor,
        secret_patient,
        granted_at=now - datetime.timedelta(days=ended_days_ago + 1),
        expires_at=now - datetime.timedelta(days=ended_days_ago),
    )
    response = login(client, doctor).get(dialog_url(secret_patient))
    assert response.status_code == 200
    assert "J'accède au dossier du patient en engageant ma responsabilité." in text(response)
    assert AuditEvent.objects.count() == 0


@pytest.mark.parametrize("state", ["closed", "blocked"])
def test_dialog_without_a_search_on_a_refused_record_looks_missing(
    client: Client, doctor: Professional, secret_patient: Patient, state: str
) -> None:
    """Holding a grant, but the record closed or the professional blocked: as on the record page."""
    make_grant(doctor, secret_patient)
    if state == "blocked":
        PatientBlock.objects.create(patient=secret_patient, professional=doctor)
    else:
        Patient.objects.filter(pk=secret_patient.pk).update(dossier_state=state)
    login(client, doctor)
    response = client.get(dialog_url(secret_patient))
    missing = client.get(reverse("access:dialog", args=[uuid.uuid4()]))
    assert response.status_code == missing.status_code == 404
    assert CSRF_TOKEN.sub(b"", response.content) == CSRF_TOKEN.sub(b"", missing.content)
    reason = {"closed": "record_closed", "blocked": "blocked"}[state]
    assert [
        (e.action, e.outcome, e.patient, e.details["reason"]) for e in AuditEvent.objects.order_by("sequence")
    ] == [
        ("access.dialog", "refused", secret_patient, reason),
        ("access.dialog", "refused", None, "unknown"),
    ]


def test_dialog_stays_closed_for_a_grant_that_ended_long_ago(
    client: Client, doctor: Professional, secret_patient: Patient
) -> None:
    now = timezone.now()
    make_grant(
        doctor,
        secret_patient,
        granted_at=now - datetime.timedelta(days=200),
        expires_at=now - datetime.timedelta(days=100),
    )
    assert login(client, doctor).get(dialog_url(secret_patient)).status_code == 404
    assert trail() == [("access.dialog", "refused")]


# --- the record page: refusal matrix -------------------------------------------------------------


def no_access(pro: Professional, patient: Patient) -> None:
    return None


def expired(pro: Professional, patient: Patient) -> None:
    now = timezone.now()
    make_grant(
        pro, patient, granted_at=now - datetime.timedelta(days=2), expires_at=now - datetime.timedelta(days=1)
    )


def revoked(pro: Professional, patient: Patient) -> None:
    make_grant(pro, patient, revoked_at=timezone.now())


def someone_elses(pro: Professional, patient: Patient) -> None:
    make_grant(make_professional("doctor"), patient)


def blocked(pro: Professional, patient: Patient) -> None:
    make_grant(pro, patient)
    PatientBlock.objects.create(patient=patient, professional=pro)


def closed(pro: Professional, patient: Patient) -> None:
    make_grant(pro, patient)
    Patient.objects.filter(pk=patient.pk).update(dossier_state=Patient.DossierState.CLOSED)


def opposed(pro: Professional, patient: Patient) -> None:
    make_grant(pro, patient)
    Patient.objects.filter(pk=patient.pk).update(dossier_state=Patient.DossierState.OPPOSED)


@pytest.mark.parametrize("setup", [no_access, expired, revoked, someone_elses, blocked, closed, opposed])
@pytest.mark.parametrize("profession", ["pharmacist", "doctor", "nurse"])
def test_record_refusals(client: Client, secret_patient: Patient, setup: Any, profession: str) -> None:
    pro = make_professional(profession)
    setup(pro, secret_patient)
    grants_before = AccessGrant.objects.count()
    response = login(client, pro).get(record_url(secret_patient))
    assert response.status_code == 404
    assert "Ce dossier est introuvable ou vous n'y avez pas accès." in text(response)
    assert_no_patient_data(response.content, secret_patient)
    assert RecordOpening.objects.count() == 0
    assert AccessGrant.objects.count() == grants_before
    events = list(AuditEvent.objects.all())
    assert [(e.action, e.outcome, e.actor, e.patient) for e in events] == [
        ("record.open", "refused", pro.user, secret_patient)
    ]


def test_record_unknown_patient_looks_the_same(
    client: Client, pharmacist: Professional, secret_patient: Patient
) -> None:
    login(client, pharmacist)
    missing = client.get(reverse("documents:record", args=[uuid.uuid4()]))
    forbidden = client.get(record_url(secret_patient))
    assert missing.status_code == forbidden.status_code == 404
    # The CSRF token (htmx header, and the header's language switch) is masked anew on each page.
    token = re.compile(rb'"X-CSRFToken": "[^"]*"|name="csrfmiddlewaretoken" value="[^"]*"')
    assert token.sub(b"", missing.content) == token.sub(b"", forbidden.content)
    assert list(AuditEvent.objects.values_list("action", "outcome")) == [("record.open", "refused")] * 2


# --- admin: the patient's access journal ---------------------------------------------------------


def test_admin_exports_access_journal_csv(
    client: Client, pharmacist: Professional, secret_patient: Patient
) -> None:
    found(client, pharmacist, secret_patient)
    client.post(
        dialog_url(secret_patient),
        {"mode": "care", "motif_choice": "dispensation", "accept_conditions": "on"},
    )
    client.get(record_url(secret_patient))
    operator = User.objects.create_superuser(username="operateur", password=None)
    otp_verified_login(client, operator)
    response = client.post(
        reverse("admin:access_patientjournal_changelist"),
        {"action": "export_journal", "_selected_action": [secret_patient.pk]},
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode()
    assert "access.grant" in text and "record.open" in text
    assert "Délivrance de médicaments" in text
    assert pharmacist.user.username in text
    assert AuditEvent.objects.filter(action="journal.export", actor=operator, patient=secret_patient).exists()
