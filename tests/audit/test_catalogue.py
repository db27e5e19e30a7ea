"""The closed catalogue of audited actions: every action the code writes is a member, with its
three labels, and ``audit_record`` takes nothing else."""

import ast
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import translation

import esante
from esante.audit.catalogue import AuditAction, AuditOutcome
from esante.audit.models import AuditEvent
from esante.audit.services import audit_record
from esante.dispensing.services import prescription_mark_dispensed
from tests.audit.settle import settle
from tests.dispensing.conftest import logged_in, pharmacist_with_access, submit_prescription

SRC = Path(esante.__file__).parent


def _modules() -> list[tuple[Path, ast.Module]]:
    return [
        (path, ast.parse(path.read_text(encoding="utf-8")))
        for path in sorted(SRC.rglob("*.py"))
        if "migrations" not in path.parts
    ]


def _audit_record_calls() -> list[tuple[Path, ast.Call]]:
    return [
        (path, node)
        for path, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (getattr(node.func, "id", None) or getattr(node.func, "attr", None)) == "audit_record"
    ]


def _members_named_in_src() -> set[str]:
    return {
        node.attr
        for _, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "AuditAction"
        and node.attr.isupper()
    }


# The helpers that fold repeated events into one ``audit_record`` call: the action comes first,
# positionally (``account_trace(AuditAction.LOGIN_CODE, key=...)``).
TRACE_HELPERS = {"account_trace", "wizard_event", "_device_trace", "locked_refusal"}


def _helper_calls() -> list[tuple[Path, ast.Call]]:
    return [
        (path, node)
        for path, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (getattr(node.func, "id", None) or getattr(node.func, "attr", None)) in TRACE_HELPERS
        and node.args
    ]


def test_every_audit_record_call_names_its_action_without_a_string() -> None:
    calls = _audit_record_calls()
    helpers = _helper_calls()
    assert len(calls) > 40 and len(helpers) > 15
    for path, call in helpers:
        action = call.args[0]
        assert not isinstance(action, ast.Constant | ast.JoinedStr | ast.BinOp), (
            f"{path}:{call.lineno}: action given as a string, not a catalogue member"
        )
    for path, call in calls:
        keywords = {keyword.arg: keyword.value for keyword in call.keywords}
        assert "action" in keywords, f"{path}:{call.lineno} audit_record without action="
        for argument in ("action", "outcome"):
            value = keywords.get(argument)
            assert not isinstance(value, ast.Constant | ast.JoinedStr | ast.BinOp), (
                f"{path}:{call.lineno}: {argument} given as a string, not a catalogue member"
            )


def _dynamic_prefixes() -> set[str]:
    """Constant prefixes of actions looked up by value: ``AuditAction.of(f"accounts.activation.{step}")``."""
    return {
        node.args[0].values[0].value
        for _, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and ast.unparse(node.func) == "AuditAction.of"
        and node.args
        and isinstance(node.args[0], ast.JoinedStr)
        and isinstance(node.args[0].values[0], ast.Constant)
    }


def test_the_catalogue_is_exactly_what_the_code_writes() -> None:
    named = _members_named_in_src()
    assert named - set(AuditAction.__members__) == set(), "unknown members named in src/"
    prefixes = _dynamic_prefixes()
    assert prefixes == {"accounts.activation."}
    unused = {
        name
        for name, member in AuditAction.__members__.items()
        if name not in named and not any(member.value.startswith(prefix) for prefix in prefixes)
    }
    assert unused == set(), "catalogue members no code writes"


def test_every_activation_step_traced_is_in_the_catalogue() -> None:
    for step in ("terms", "back", "certificate", "code", "information", "security", "complete"):
        assert AuditAction.of(f"accounts.activation.{step}").concerns_patient is False
    with pytest.raises(ValueError):
        AuditAction.of("accounts.activation.invented")


def test_every_action_has_three_labels_for_the_patient_journal() -> None:
    assert len(AuditAction) >= 45
    values = [member.value for member in AuditAction]
    assert len(values) == len(set(values))
    for member in AuditAction:
        assert set(member.labels) == {"fr", "de", "en"}
        assert all(label.strip() for label in member.labels.values()), member
        assert len(set(member.labels.values())) == 3, f"{member}: the three labels are not translated"
        assert isinstance(member.concerns_patient, bool)
    for outcome in AuditOutcome:
        assert all(label.strip() for label in outcome.labels.values())


def test_labels_follow_the_active_language() -> None:
    assert AuditAction.RECORD_OPEN.label("fr") == "Ouverture du dossier"
    assert AuditAction.DOCUMENT_READ.label("fr") == "Consultation d'un document"
    with translation.override("de"):
        assert AuditAction.RECORD_OPEN.label() == "Öffnen der Akte"
    with translation.override("en"):
        assert AuditAction.RECORD_OPEN.label() == "Record opened"
        assert AuditOutcome.REFUSED.label() == "Refused"
    assert AuditAction.RECORD_OPEN.label("pt") == "Ouverture du dossier"


def test_stored_values_are_the_strings_the_trail_always_held() -> None:
    assert AuditAction.RECORD_OPEN.value == "record.open"
    assert AuditAction.PRESCRIPTION_DISPENSE.value == "prescription.dispense"
    assert AuditAction("accounts.login.password") is AuditAction.LOGIN_PASSWORD
    assert AuditEvent.Outcome is AuditOutcome


@pytest.mark.django_db
def test_audit_record_refuses_anything_but_members() -> None:
    with pytest.raises(TypeError):
        audit_record(action="record.open", actor_label="t")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        audit_record(action=AuditAction.RECORD_OPEN, outcome="refused", actor_label="t")  # type: ignore[arg-type]
    assert not AuditEvent.objects.exists()
    (event,) = settle(
        [audit_record(action=AuditAction.RECORD_OPEN, outcome=AuditOutcome.REFUSED, actor_label="t")]
    )
    assert (event.action, event.outcome) == ("record.open", "refused")
    assert '"action":"record.open"' in event.canonical


@pytest.mark.django_db
def test_a_whole_visit_writes_only_catalogue_actions_and_names_patients_where_it_says() -> None:
    from tests.access.factories import make_patient

    patient = make_patient()
    prescription = submit_prescription(patient)
    pharmacist = pharmacist_with_access(patient)
    client = logged_in(pharmacist)
    document = prescription.document
    base = f"/edocuments/patient/{patient.public_id}/"
    client.post("/edocuments/recherche/", {"matricule": patient.matricule})
    client.get(base)
    client.get(base, {"vue": "documentaire"}, headers={"HX-Request": "true"})
    client.get(base, {"mots": "amoxicilline"}, headers={"HX-Request": "true"})
    client.get(f"{base}document/{document.public_id}/")
    client.get(reverse("documents:content", args=[patient.public_id, document.public_id]))
    prescription_mark_dispensed(
        prescription=prescription, pharmacist=pharmacist, kind="full", based_on_version=0
    )
    client.get(f"{base}document/00000000-0000-0000-0000-000000000000/")
    events = list(AuditEvent.objects.order_by("sequence"))
    written = {event.action for event in events}
    assert {
        "patient.search",
        "document.content",
        "document.submit",
        "record.open",
        "record.view",
        "record.search",
        "document.read",
        "prescription.dispense",
    } <= written
    for event in events:
        action = AuditAction(event.action)
        AuditOutcome(event.outcome)
        if event.patient_id is not None:
            assert action.concerns_patient, f"{action} names a patient but says it concerns none"
