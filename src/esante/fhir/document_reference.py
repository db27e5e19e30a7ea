"""Document <-> FHIR ``DocumentReference`` (IHE MHD, ITI-67/68): the mapping and the search
parameters. No rules here: which documents a caller sees is the access gate's decision.

``date`` is the document's clinical date (the date the portal shows and filters on).
"""

import datetime
import functools
from typing import Any

from django.db.models import Q, QuerySet
from django.http import QueryDict
from django.utils import translation
from django.utils.dateparse import parse_datetime

from esante.documents.models import Document
from esante.documents.types import DOCUMENT_TYPES, class_label

from .outcome import invalid
from .patient import matricule_of

LOINC = "http://loinc.org"
CLASS_SYSTEM = "urn:esante:document-class"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
SEARCH_PARAMETERS = {
    "patient",
    "patient.identifier",
    "status",
    "date",
    "type",
    "category",
    "author.family",
    "author.family:exact",
    "_count",
    "_page",
    "_format",
}
#: The local id of the contained ``Practitioner`` naming a registered author.
AUTHOR_ID = "author"
_STATUSES = {value for value, _ in Document.Status.choices}
#: The columns ``to_resource`` maps, the registered author's name among them: a search reads
#: those only (not the extracted text a document may carry, nor the author's other columns).
MAPPED = (
    "public_id",
    "patient",
    "type_code",
    "class_code",
    "title",
    "clinical_at",
    "author_name",
    "source_system",
    "confidentiality",
    "media_type",
    "size",
    "status",
    "author__last_name",
    "author__first_name",
    "author__profession",
)


def content_url(base: str, public_id: str) -> str:
    """The ITI-68 address of a document's bytes (absolute)."""
    return f"{base}/DocumentReference/{public_id}/content"


@functools.lru_cache(maxsize=256)
def _class_display(class_code: str, language: str | None) -> str:
    """The class's label in ``language`` (the active one: the same for every row of a page)."""
    return class_label(class_code)


def to_resource(document: Document, base: str) -> dict[str, Any]:
    """The MHD DocumentReference of a document (its bytes behind ``content_url``).

    Each value is computed once (a page maps up to ``ESANTE_FHIR_MAX_PAGE_SIZE`` rows)."""
    document_type = DOCUMENT_TYPES.get(document.type_code)
    public_id = str(document.public_id)
    subject = f"Patient/{document.patient.public_id}"
    clinical_at = document.clinical_at.isoformat()
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": public_id,
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{public_id}"},
        "status": document.status,
        "type": {
            "coding": [
                {
                    "system": LOINC,
                    "code": document.type_code,
                    **({"display": str(document_type.label)} if document_type else {}),
                }
            ]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": CLASS_SYSTEM,
                        "code": document.class_code,
                        "display": _class_display(document.class_code, translation.get_language()),
                    }
                ]
            }
        ],
        "subject": {"reference": subject},
        "date": clinical_at,
        "author": [{"display": document.author_name}] if document.author_name else [],
        "description": document.title,
        "securityLabel": [{"coding": [{"system": CONFIDENTIALITY, "code": document.confidentiality}]}],
        "content": [
            {
                "attachment": {
                    "contentType": document.media_type,
                    "url": content_url(base, public_id),
                    "size": document.size,
                    "title": document.title,
                    "creation": clinical_at,
                }
            }
        ],
        "context": {"period": {"start": clinical_at}},
    }
    if document.source_system:
        resource["context"]["sourcePatientInfo"] = {"reference": subject}
    author = document.author  # a search reads it with the row (select_related)
    if author is not None:
        # A registered author is named in a contained Practitioner, which ``author.family`` searches.
        resource["contained"] = [
            {
                "resourceType": "Practitioner",
                "id": AUTHOR_ID,
                "name": [{"family": author.last_name, "given": [author.first_name]}],
            }
        ]
        resource["author"] = [{"reference": f"#{AUTHOR_ID}", "display": document.author_name or str(author)}]
    if not resource["author"]:
        del resource["author"]
    return resource


def patient_id(params: QueryDict) -> str:
    """The patient a search is about (``patient=ID``, ``Patient/ID`` or an absolute URL), or ``""``
    when it is named by ``patient.identifier`` (see ``patient_matricule``). One of them is required."""
    values = params.getlist("patient")
    identifiers = params.getlist("patient.identifier")
    if len(values) + len(identifiers) != 1 or not (values or identifiers)[0].strip():
        raise invalid(
            "patient-required",
            "La recherche de documents exige un et un seul paramètre « patient » ou « patient.identifier ».",
        )
    return values[0].strip().rstrip("/").rsplit("/", 1)[-1] if values else ""


def patient_matricule(params: QueryDict) -> str:
    """The matricule of ``patient.identifier=urn:oid:1.3.182.4.4|M`` (``""`` when absent)."""
    identifiers = params.getlist("patient.identifier")
    return matricule_of(identifiers[0].strip()) if identifiers else ""


def _token(value: str, system: str) -> str:
    given_system, bar, code = value.rpartition("|")
    if bar and given_system not in ("", system):
        raise invalid("unknown-code-system", f"Système de codes non pris en charge : {given_system}.")
    return code if bar else value


_PREFIXES = {"eq", "ge", "gt", "le", "lt"}


def _date_filter(value: str) -> Q:
    prefix = value[:2] if value[:2] in _PREFIXES else "eq"
    text = value[2:] if value[:2] in _PREFIXES else value
    moment = parse_datetime(text) if "T" in text else None
    try:
        day = None if moment else datetime.date.fromisoformat(text)
    except ValueError:
        raise invalid(
            "invalid-date", "La date doit être au format AAAA-MM-JJ (préfixes ge, gt, le, lt, eq)."
        ) from None
    if moment is None and day is None:
        raise invalid("invalid-date", "La date doit être au format AAAA-MM-JJ (préfixes ge, gt, le, lt, eq).")
    if moment is not None:
        if moment.tzinfo is None:
            raise invalid("invalid-date", "Une date et heure doit préciser son fuseau horaire.")
        return Q(**{f"clinical_at__{ {'eq': 'exact'}.get(prefix, prefix) }": moment})
    assert day is not None  # noqa: S101
    lookups = {
        "eq": "clinical_at__date",
        "ge": "clinical_at__date__gte",
        "gt": "clinical_at__date__gt",
        "le": "clinical_at__date__lte",
        "lt": "clinical_at__date__lt",
    }
    return Q(**{lookups[prefix]: day})


def search(documents: QuerySet[Document], params: QueryDict) -> tuple[QuerySet[Document], dict[str, str]]:
    """The documents matching the MHD parameters, newest first, and the filters for the trail.
    ``documents`` are one patient's: the caller, who read the patient, puts it on each row."""
    for name in params:
        if name not in SEARCH_PARAMETERS:
            raise invalid("unknown-parameter", f"Paramètre de recherche non pris en charge : {name}.")
    traced: dict[str, str] = {}
    if statuses := [s for value in params.getlist("status") for s in value.split(",")]:
        if set(statuses) - _STATUSES:
            raise invalid("invalid-status", "Le statut doit être current, superseded ou entered-in-error.")
        documents = documents.filter(status__in=statuses)
        traced["status"] = ",".join(statuses)
    for value in params.getlist("date"):
        documents = documents.filter(_date_filter(value))
        traced.setdefault("date", "")
        traced["date"] = f"{traced['date']} {value}".strip()
    if types := [_token(t, LOINC) for value in params.getlist("type") for t in value.split(",")]:
        documents = documents.filter(type_code__in=types)
        traced["type"] = ",".join(types)
    if classes := [_token(c, CLASS_SYSTEM) for value in params.getlist("category") for c in value.split(",")]:
        documents = documents.filter(class_code__in=classes)
        traced["category"] = ",".join(classes)
    for name, lookup in (("author.family", "istartswith"), ("author.family:exact", "exact")):
        families = [value.strip() for value in params.getlist(name)]
        if any(not family for family in families):
            raise invalid("invalid-author", "Le nom de l'auteur recherché est vide.")
        for family in families:
            documents = documents.filter(**{f"author__last_name__{lookup}": family})
            traced[name] = family
    # The caller's joins are dropped (the patient's own documents join their prescription for the
    # portal): only the author is mapped, and a join of a deferred field is an error.
    rows = documents.select_related(None).select_related("author").only(*MAPPED)
    return rows.order_by("-clinical_at", "-pk"), traced
