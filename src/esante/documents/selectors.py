"""Reading documents: every query starts from what the caller may see.

``visible_documents`` is the queryset form of ``esante.access.policy.may_read_document`` (a
test holds the two to the same answers): the access app decides, this module only applies the
decision in SQL so that a record of thousands of documents is filtered by the database.
"""

import datetime
import uuid
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count, Max, Q, QuerySet

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
    documents: "list[TreeDocument]"


@dataclass
class TreeClass:
    code: str
    label: str
    count: int
    types: list[TreeType]


@dataclass(frozen=True, slots=True)
class TreePrescription:
    dispensation_state: str


@dataclass(frozen=True, slots=True)
class TreeDocument:
    """What the tree renders of a listed document (``documents/_documents.html``) and nothing
    more: not the extracted text (up to 200 kB a document), not a model instance per row."""

    pk: int
    public_id: uuid.UUID
    type_code: str
    class_code: str
    title: str
    clinical_at: datetime.datetime
    author_name: str
    source_system: str
    prescription: TreePrescription | None


TREE_COLUMNS = (
    "id",
    "public_id",
    "type_code",
    "class_code",
    "title",
    "clinical_at",
    "author_name",
    "source_system",
    "prescription__id",
    "prescription__dispensation_state",
)
# Stand-ins for a class and a type while the per-range query is compiled once; replaced in its
# parameters by each range's own (parameters are positional, the SQL text is shared).
_CLASS, _TYPE = "\x00class", "\x00type"


def document_tree(documents: QuerySet[Document], *, per_type: int = 50) -> list[TreeClass]:
    """ "Vue documentaire": class > type with counts, newest documents first. Two queries.

    Both read ``document_patient_tree_idx`` only: the counts group its entries in its order, and
    the newest ``per_type`` of each class and type are the first entries of that range (one
    ``LIMIT`` each, in one statement); then only those rows are read, by primary key, and only the
    columns the page shows. A record of thousands of documents costs what the page shows.
    """
    counts = {
        (row["class_code"], row["type_code"]): row["n"]
        for row in documents.order_by().values("class_code", "type_code").annotate(n=Count("id"))
    }
    by_type: dict[str, list[TreeDocument]] = {}
    if counts:
        part_sql, part_params = (
            documents.filter(class_code=_CLASS, type_code=_TYPE)
            .order_by("-clinical_at", "-id")
            .values("id")[:per_type]
            .query.sql_with_params()
        )
        if part_params.count(_CLASS) != 1 or part_params.count(_TYPE) != 1:
            raise AssertionError("the tree's range query lost its class or type parameter")
        at_class, at_type = part_params.index(_CLASS), part_params.index(_TYPE)
        ranges = sorted(counts)
        # SELECT id FROM (… class and type A … LIMIT n) UNION ALL SELECT id FROM (… B …) …: only
        # ids of ``documents`` (the viewer's visibility filter is in every part).
        union = " UNION ALL ".join(f"SELECT id FROM ({part_sql}) AS newest_{n}" for n in range(len(ranges)))  # noqa: S608 - compiled by the ORM, values are parameters
        params: list[Any] = []
        for class_code, type_code in ranges:
            one = list(part_params)
            one[at_class], one[at_type] = class_code, type_code
            params.extend(one)
        rows = (
            Document.objects.extra(where=[f"documents_document.id IN ({union})"], params=params)  # noqa: S610
            .order_by("class_code", "type_code", "-clinical_at", "-id")
            .values_list(*TREE_COLUMNS)
        )
        for pk, public_id, type_code, class_code, title, clinical_at, author, source, p_id, p_state in rows:
            by_type.setdefault(type_code, []).append(
                TreeDocument(
                    pk,
                    public_id,
                    type_code,
                    class_code,
                    title,
                    clinical_at,
                    author,
                    source,
                    None if p_id is None else TreePrescription(p_state),
                )
            )
        for code, listed in by_type.items():
            # The newest ``per_type`` of a type, whatever its classes (a type normally has one).
            if len(listed) > per_type:
                kept = {
                    d.pk for d in sorted(listed, key=lambda d: (d.clinical_at, d.pk), reverse=True)[:per_type]
                }
                by_type[code] = [document for document in listed if document.pk in kept]
    classes: dict[str, TreeClass] = {}
    for (class_code, type_code), n in sorted(
        counts.items(), key=lambda item: (class_label(item[0][0]), item[0][1])
    ):
        tree_class = classes.setdefault(class_code, TreeClass(class_code, class_label(class_code), 0, []))
        tree_class.count += n
        document_type = DOCUMENT_TYPES.get(type_code)
        tree_class.types.append(
            TreeType(
                type_code,
                document_type.display_label if document_type else type_code,
                n,
                by_type.get(type_code, []),
            )
        )
    return list(classes.values())


def filter_choices(documents: QuerySet[Document]) -> dict[str, Any]:
    """Values offered by the filters "Par type", "Par classeurs", "Par auteurs": the distinct
    (type, binder, author) triples of the record, one query over ``document_patient_tree_idx``."""
    triples = list(documents.order_by().values_list("type_code", "binder", "author_name").distinct())
    return {
        "types": sorted(
            {(code, DOCUMENT_TYPES[code].display_label) for code, _, _ in triples if code in DOCUMENT_TYPES},
            key=lambda pair: pair[1],
        ),
        "binders": sorted({binder for _, binder, _ in triples}),
        "authors": sorted({author for _, _, author in triples}),
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
