"""The audit trail's events <-> FHIR ``AuditEvent`` in the shape of IHE BALP (Basic Audit Log
Patterns): who (the professional, the software, the network address), what (the action, its
outcome), about whom (the patient). No rules here."""

import datetime
from typing import Any

from django.db.models import QuerySet
from django.http import QueryDict
from django.utils.dateparse import parse_date

from esante.audit.catalogue import AuditAction
from esante.audit.models import AuditEvent

from .outcome import invalid

ACTION_SYSTEM = "urn:esante:audit-action"
SEARCH_PARAMETERS = {"date", "_count", "_page", "_format"}
_OUTCOMES = {"success": "0", "failure": "4", "refused": "8"}
_PREFIXES = {"ge": "__date__gte", "gt": "__date__gt", "le": "__date__lte", "lt": "__date__lt", "eq": "__date"}


def _verb(action: str) -> str:
    """BALP's action code: C(reate), R(ead), U(pdate), D(elete) or E(xecute)."""
    if action.endswith((".search", ".read", ".open", ".view", ".content", ".dialog")):
        return "R" if not action.endswith(".search") else "E"
    if action.endswith((".grant", ".emergency", ".submit", ".dispense", ".register", ".token", ".authorise")):
        return "C"
    if action.endswith((".revoke", ".withdraw")):
        return "D"
    return "E"


def to_resource(event: AuditEvent, *, who: str = "", network: bool = True) -> dict[str, Any]:
    """The event as an AuditEvent (IHE BALP shape). For a patient reading their own journal,
    ``who`` names the actor in the journal's words and ``network=False`` leaves out the
    actor's client address."""
    try:
        label = AuditAction.of(event.action).label("fr")
    except ValueError:
        label = event.action
    via = (event.details or {}).get("via") or {}
    agents: list[dict[str, Any]] = [
        {
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                 "code": "IRCP"}]},
            "who": {"display": who or event.actor_label or "—"},
            "requestor": True,
            **(
                {"network": {"address": event.client_address, "type": "2"}}
                if event.client_address and network
                else {}
            ),
        }
    ]  # fmt: skip
    if via.get("client"):
        software = {"system": "urn:esante:software-client", "value": str(via["client"])}
        agents.append(
            {
                "type": {
                    "coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110150"}]
                },
                "who": {"identifier": software, "display": str(via.get("client_name", ""))},
                "requestor": False,
            }
        )
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        # An event still waiting for the chainer (batched chaining) has no number yet.
        "id": str(event.sequence) if event.sequence is not None else f"pending-{event.pk}",
        "type": {
            "system": "http://dicom.nema.org/resources/ontology/DCM",
            "code": "110110",
            "display": "Patient Record",
        },
        "subtype": [{"system": ACTION_SYSTEM, "code": event.action, "display": label}],
        "action": _verb(event.action),
        "recorded": event.created_at.astimezone(datetime.UTC).isoformat(),
        "outcome": _OUTCOMES.get(event.outcome, "4"),
        "agent": agents,
        "source": {"observer": {"display": "eSanté eDocuments"}},
    }
    if event.outcome != "success" and (reason := (event.details or {}).get("reason")):
        resource["outcomeDesc"] = str(reason)
    if event.patient is not None:
        resource["entity"] = [
            {
                "what": {"reference": f"Patient/{event.patient.public_id}"},
                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1"},
                "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1"},
            }
        ]
    return resource


def search(events: QuerySet[AuditEvent], params: QueryDict) -> QuerySet[AuditEvent]:
    for name in params:
        if name not in SEARCH_PARAMETERS:
            raise invalid("unknown-parameter", f"Paramètre de recherche non pris en charge : {name}.")
    for value in params.getlist("date"):
        prefix = value[:2] if value[:2] in _PREFIXES else "eq"
        day = parse_date(value[2:] if value[:2] in _PREFIXES else value) if value else None
        if day is None:
            raise invalid(
                "invalid-date", "La date doit être au format AAAA-MM-JJ (préfixes ge, gt, le, lt, eq)."
            )
        events = events.filter(**{f"created_at{_PREFIXES[prefix]}": day})
    return events
