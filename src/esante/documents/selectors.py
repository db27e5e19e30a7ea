"""Reading documents: every query starts from what the caller may see.

``visible_documents`` is the queryset form of ``esante.access.policy.may_read_document`` (a
test holds the two to the same answers): the access app decides, this module only applies the
decision in SQL so that a record of thousands of documents is filtered by the database.
"""

import datetime
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count, F, Max, Q, QuerySet, Window
from django.db.models.functions import RowNumber

from esante.access.models import AccessGrant
from esante.access.policy import readable_documents_filter
from esante.access.selectors import RecordNotFound, access_patient_record
from esante.accounts.models import Professional
from esante.patients.models import Patient

from .models import Document
from .search import matching_ids_sql
from .types import DOCUMENT_TYPES, class_label


def visible_documents(professional: Professional, patient: Patient, grant: AccessGrant) -> QuerySet[Document]:
    """The patient's documents this professional may read under this (current) access; the
    decision is the access app's (``readable_documents_filter``), applied here in SQL."""
    base = Document.objects.filter(patient=patient).exclude(status=Document.Status.ENTERED_IN_ERROR)
    readable = readable_documents_filter(mode=grant.mode, professional=professional, patient=patient)
    return base.none() if readable is None else base.filter(readable)


def access_document(
    professional: Professional, patient_public_id: object, document_public_id: object
) -> tuple[Patient, AccessGrant, Document]:
    """Fetches one document the professional may read; RecordNotFound for missing and forbidden alike."""
    patient, grant = access_patient_record(professional, patient_public_id)
    try:
        document = (
            visible_documents(professional, patient, grant)
            .select_related("prescription")
            .get(public_id=document_public_id)  # type: ignore[misc]
        )
    except (Document.DoesNotExist, ValidationError, ValueError, TypeError):
        # Missing, forbidden and malformed identifiers look the same.
        raise RecordNotFound("document_not_visible", patient) from None
    return patient, grant, document


@dataclass
class DocumentFilters:
    type_code: str = ""
    class_code: str = ""
    binder: str = ""
    author: str = ""
    date_from: datetime.date | None = None
    date_to: datetime.date | None = None
    new_since: datetime.datetime | None = None
    words: str = ""


def filtered(documents: QuerySet[Document], filters: DocumentFilters) -> QuerySet[Document]:
    if filters.type_code:
        documents = documents.filter(type_code=filters.type_code)
    if filters.class_code:
        documents = documents.filter(class_code=filters.class_code)
    if filters.binder:
        documents = documents.filter(binder=filters.binder)
    if filters.author:
        documents = documents.filter(author_name=filters.author)
    if filters.date_from:
        documents = documents.filter(clinical_at__date__gte=filters.date_from)
    if filters.date_to:
        documents = documents.filter(clinical_at__date__lte=filters.date_to)
    if filters.new_since:
        documents = documents.filter(submitted_at__gt=filters.new_since)
    if filters.words:
        sql = matching_ids_sql(filters.words)
        if sql is not None:
            documents = documents.extra(where=[f"documents_document.id IN ({sql[0]})"], params=sql[1])  # noqa: S610
    return documents


@dataclass
class TreeType:
    code: str
    label: str
    count: int
    documents: list[Document]


@dataclass
class TreeClass:
    code: str
    label: str
    count: int
    types: list[TreeType]


def document_tree(documents: QuerySet[Document], *, per_type: int = 50) -> list[TreeClass]:
    """ "Vue documentaire": class > type with counts, newest documents first. Two queries."""
    counts = list(documents.order_by().values("class_code", "type_code").annotate(n=Count("id")))
    # Only the newest ``per_type`` rows of each type leave the database (a window function), so a
    # record of thousands of documents costs the same as one of a few hundred.
    rank = Window(
        RowNumber(), partition_by=[F("type_code")], order_by=[F("clinical_at").desc(), F("id").desc()]
    )
    rows = list(
        documents.annotate(rank=rank)
        .filter(rank__lte=per_type)
        .select_related("prescription")
        .order_by("class_code", "type_code", "-clinical_at", "-id")
    )
    by_type: dict[str, list[Document]] = {}
    for document in rows:
        by_type.setdefault(document.type_code, []).append(document)
    classes: dict[str, TreeClass] = {}
    for row in sorted(counts, key=lambda r: (class_label(r["class_code"]), r["type_code"])):
        tree_class = classes.setdefault(
            row["class_code"], TreeClass(row["class_code"], class_label(row["class_code"]), 0, [])
        )
        tree_class.count += row["n"]
        document_type = DOCUMENT_TYPES.get(row["type_code"])
        tree_class.types.append(
            TreeType(
                row["type_code"],
                document_type.display_label if document_type else row["type_code"],
                row["n"],
                by_type.get(row["type_code"], []),
            )
        )
    return list(classes.values())


def filter_choices(documents: QuerySet[Document]) -> dict[str, Any]:
    """Values offered by the filters "Par type", "Par classeurs", "Par auteurs" (one query each)."""
    return {
        "types": sorted(
            {
                (code, DOCUMENT_TYPES[code].display_label)
                for code in documents.values_list("type_code", flat=True).distinct()
                if code in DOCUMENT_TYPES
            },
            key=lambda pair: pair[1],
        ),
        "binders": sorted(set(documents.values_list("binder", flat=True).distinct())),
        "authors": sorted(set(documents.values_list("author_name", flat=True).distinct())),
    }


def latest_per_class(documents: QuerySet[Document]) -> list[Document]:
    """ "Vue 360": the newest document of each class (two queries)."""
    newest = documents.order_by().values("class_code").annotate(last=Max("clinical_at"))
    wanted = Q()
    for row in newest:
        wanted |= Q(class_code=row["class_code"], clinical_at=row["last"])
    if not wanted:
        return []
    seen: set[str] = set()
    result = []
    for document in documents.filter(wanted).order_by("class_code", "-id"):
        if document.class_code not in seen:
            seen.add(document.class_code)
            result.append(document)
    return result
