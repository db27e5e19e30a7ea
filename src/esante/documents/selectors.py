"""Reading documents: every query starts from what the caller may see.

``visible_documents`` is the queryset form of ``esante.access.policy.may_read_document`` (a
test holds the two to the same answers): the access app decides, this module only applies the
decision in SQL so that a record of thousands of documents is filtered by the database.
"""

import datetime
import functools
import uuid
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import EmptyResultSet, ValidationError
from django.db import connections
from django.db.models import Max, Q, QuerySet
from django.utils.translation import get_language

from esante.access.models import AccessGrant
from esante.access.policy import readable_documents_filter
from esante.access.selectors import RecordNotFound, access_patient_record
from esante.accounts.models import Professional
from esante.patients.models import Patient

from .models import Document, DocumentSummary
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


def _column_filters(rows: QuerySet[Any], filters: DocumentFilters) -> QuerySet[Any]:
    """The filters on columns that documents and their summary rows share (type, class, binder,
    author)."""
    if filters.type_code:
        rows = rows.filter(type_code=filters.type_code)
    if filters.class_code:
        rows = rows.filter(class_code=filters.class_code)
    if filters.binder:
        rows = rows.filter(binder=filters.binder)
    if filters.author:
        rows = rows.filter(author_name=filters.author)
    return rows


def filtered(documents: QuerySet[Document], filters: DocumentFilters) -> QuerySet[Document]:
    documents = _column_filters(documents, filters)
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


# Not ``frozen``: a frozen dataclass sets each field through ``object.__setattr__``, which made
# building the listed rows a third of the tree's cost.
@dataclass(slots=True)
class TreePrescription:
    dispensation_state: str


@dataclass(slots=True)
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


# What the tree reads of a listed document, and the rows it reads them from (``d``: the document,
# ``p``: its prescription, when it is one).
_COLUMNS = (
    "d.id, d.public_id, d.type_code, d.class_code, d.title, {clinical_at}, d.author_name, "
    "d.source_system, p.id, p.dispensation_state"
)
# The time as UTC without zone, read by the driver's own loader (PostgreSQL) or by
# ``datetime.fromisoformat`` (SQLite: an expression has no declared type, so Django's per-value
# converter does not run): both in C.
_TREE_COLUMNS = _COLUMNS.format(clinical_at="CAST(d.clinical_at AS TEXT)")
_TREE_COLUMNS_PG = _COLUMNS.format(clinical_at="d.clinical_at AT TIME ZONE 'UTC'")
_TREE_JOIN = "LEFT OUTER JOIN documents_prescription p ON p.document_id = d.id"
_TREE_ORDER = "ORDER BY d.class_code, d.type_code, d.clinical_at DESC, d.id DESC"


def visible_summary(
    professional: Professional, patient: Patient, grant: AccessGrant
) -> QuerySet[DocumentSummary]:
    """``visible_documents`` over the patient's ``DocumentSummary`` rows: the rows of the documents
    this professional may read, by the same decision (``readable_documents_filter``: its field
    names are the summary's too)."""
    base = DocumentSummary.objects.filter(patient=patient).exclude(status=Document.Status.ENTERED_IN_ERROR)
    readable = readable_documents_filter(mode=grant.mode, professional=professional, patient=patient)
    return base.none() if readable is None else base.filter(readable)


def filtered_summary(
    summary: QuerySet[DocumentSummary], filters: DocumentFilters
) -> QuerySet[DocumentSummary] | None:
    """``filtered`` over summary rows, when every filter set is one of their columns (type, class,
    binder, author); None when a date, the "Nouveaux" box or words are set (the documents then)."""
    if filters.date_from or filters.date_to or filters.new_since or filters.words:
        return None
    return _column_filters(summary, filters)


def _where(rows: QuerySet[Any]) -> tuple[str, list[Any]] | None:
    """The WHERE clause of a single-table queryset (its visibility filter and filters) as SQL with
    parameters, compiled once: ``("", [])`` when it reads every row, None when it reads none.

    The tree and the choices wrap it in their own statements rather than have the ORM build and
    compile each of them: on this machine the ORM's work was three quarters of their cost.
    """
    query = rows.query
    # Joins the filters set up and trimmed stay in the alias map with no reference.
    tables = sum(1 for count in query.alias_refcount.values() if count)
    if tables > 1 or query.is_sliced or query.distinct or query.combinator:
        raise ValueError("the tree reads a filtered single-table queryset")
    compiler = query.get_compiler(using=rows.db)
    try:
        sql, params = compiler.compile(query.where)
    except EmptyResultSet:
        return None
    return sql, list(params)


def _fetch(rows: QuerySet[Any], sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with connections[rows.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _tree_rows(
    documents: QuerySet[Document], summary: QuerySet[DocumentSummary] | None, per_type: int
) -> tuple[dict[tuple[str, str], int], dict[str, list[TreeDocument]]]:
    """The counts per (class, type) and the newest ``per_type`` documents of each such range.

    The counts group ``summary``'s rows (or, without it, the documents' entries of
    ``document_patient_tree_idx``). Each range's documents are its first ``per_type`` entries of
    that index under the viewer's filter (one ``LIMIT`` each, index only); then only those rows
    are read, by primary key, and only the columns the page shows. Plain statements around the
    ORM-compiled filters: no model, no ORM compilation of the statements, no per-row converter
    beyond the two columns that need one. PostgreSQL: one statement (each range joined
    ``LATERAL`` to its newest entries, one round trip); SQLite: the counts, then a ``UNION ALL``
    of the ranges.
    """
    counted_rows: QuerySet[Any] = documents if summary is None else summary
    counted_where, where = _where(counted_rows), _where(documents)
    if counted_where is None or where is None:
        return {}, {}
    counted = "count(*)" if summary is None else "sum(document_count)"
    grouped = (
        f"SELECT class_code, type_code, {counted} AS n FROM {counted_rows.model._meta.db_table} "  # noqa: S608 - names are constants, values parameters
        f"WHERE {counted_where[0] or '1 = 1'} GROUP BY class_code, type_code"
    )
    filters = f"{where[0]} AND " if where[0] else ""
    newest = f"ORDER BY clinical_at DESC, id DESC LIMIT {int(per_type)}"
    counts: dict[tuple[str, str], int] = {}
    if connections[documents.db].vendor == "postgresql":
        sql = (
            f"SELECT r.class_code, r.type_code, r.n, {_TREE_COLUMNS_PG} FROM ({grouped}) AS r "  # noqa: S608 - ORM-compiled filters, values are parameters
            f"LEFT JOIN LATERAL (SELECT id FROM documents_document WHERE {filters}"
            "documents_document.class_code = r.class_code AND documents_document.type_code = r.type_code "
            f"{newest}) AS newest ON true LEFT JOIN documents_document d ON d.id = newest.id {_TREE_JOIN} "
            f"{_TREE_ORDER}"
        )
        rows: list[tuple[Any, ...]] = []
        for class_code, type_code, n, *listed in _fetch(documents, sql, counted_where[1] + where[1]):
            counts[class_code, type_code] = int(n)
            if listed[0] is not None:  # a range with no document (only if the summary drifted)
                rows.append(tuple(listed))
    else:
        for class_code, type_code, n in _fetch(counted_rows, grouped, counted_where[1]):
            counts[class_code, type_code] = int(n)
        if not counts:
            return {}, {}
        # SELECT id FROM (… class and type A … LIMIT n) UNION ALL SELECT id FROM (… B …) …: only
        # ids of ``documents`` (the viewer's visibility filter is in every part).
        part = f"SELECT id FROM documents_document WHERE {filters}class_code = %s AND type_code = %s {newest}"  # noqa: S608 - ORM-compiled filter, values are parameters
        union = " UNION ALL ".join(f"SELECT id FROM ({part}) AS newest_{n}" for n in range(len(counts)))  # noqa: S608
        params: list[Any] = []
        for class_code, type_code in sorted(counts):
            params.extend(where[1])
            params.extend((class_code, type_code))
        sql = f"SELECT {_TREE_COLUMNS} FROM documents_document d {_TREE_JOIN} WHERE d.id IN ({union}) "  # noqa: S608
        rows = _fetch(documents, sql + _TREE_ORDER, params)
    # SQLite stores UUIDs as hex text and gives the time as text; both as naive UTC.
    sqlite = connections[documents.db].vendor == "sqlite"
    utc = datetime.UTC
    by_type: dict[str, list[TreeDocument]] = {}
    for pk, public_id, type_code, class_code, title, clinical_at, author, source, p_id, p_state in rows:
        by_type.setdefault(type_code, []).append(
            TreeDocument(
                pk,
                uuid.UUID(public_id) if sqlite else public_id,
                type_code,
                class_code,
                title,
                (datetime.datetime.fromisoformat(clinical_at) if sqlite else clinical_at).replace(tzinfo=utc),
                author,
                source,
                None if p_id is None else TreePrescription(p_state),
            )
        )
    for code, listed in by_type.items():
        # The newest ``per_type`` of a type, whatever its classes (a type normally has one).
        if len(listed) > per_type:
            newest_first = sorted(listed, key=lambda d: (d.clinical_at, d.pk), reverse=True)
            kept = {d.pk for d in newest_first[:per_type]}
            by_type[code] = [document for document in listed if document.pk in kept]
    return counts, by_type


@functools.lru_cache(maxsize=1024)
def _class_label(language: str | None, class_code: str) -> str:
    """A class's label in ``language``, the active one (a translation lookup once, not per row)."""
    return class_label(class_code)


@functools.lru_cache(maxsize=1024)
def _type_label(language: str | None, type_code: str) -> str:
    """A type's label in ``language``, the active one; its code when the type is unknown."""
    document_type = DOCUMENT_TYPES.get(type_code)
    return document_type.display_label if document_type else type_code


def document_tree(
    documents: QuerySet[Document], *, per_type: int = 50, summary: QuerySet[DocumentSummary] | None = None
) -> list[TreeClass]:
    """ "Vue documentaire": class > type with counts, newest documents first. One query on
    PostgreSQL, two on SQLite (``_tree_rows``).

    The counts come from ``summary`` when given — the ``DocumentSummary`` rows of exactly the
    documents of ``documents`` (``visible_summary`` then ``filtered_summary``): tens of rows, not
    one per document; else from ``documents`` (an index-only scan of the whole record). The
    listed documents are the first entries of each range of ``document_patient_tree_idx``. A
    record of thousands of documents costs what the page shows.
    """
    counts, by_type = _tree_rows(documents, summary, per_type)
    language = get_language()
    classes: dict[str, TreeClass] = {}
    for (class_code, type_code), n in sorted(
        counts.items(), key=lambda item: (_class_label(language, item[0][0]), item[0][1])
    ):
        tree_class = classes.get(class_code)
        if tree_class is None:
            label = _class_label(language, class_code)
            tree_class = classes[class_code] = TreeClass(class_code, label, 0, [])
        tree_class.count += n
        listed = by_type.get(type_code, [])
        tree_class.types.append(TreeType(type_code, _type_label(language, type_code), n, listed))
    return list(classes.values())


def filter_choices(rows: QuerySet[Document] | QuerySet[DocumentSummary]) -> dict[str, Any]:
    """Values offered by the filters "Par type", "Par classeurs", "Par auteurs": the distinct
    (type, binder, author) triples of the record's documents, or of its summary rows
    (``visible_summary``: the same triples, from tens of rows instead of one per document)."""
    where = _where(rows)
    triples = (
        []
        if where is None
        else _fetch(
            rows,
            f"SELECT DISTINCT type_code, binder, author_name FROM {rows.model._meta.db_table} "  # noqa: S608 - names are constants, values parameters
            f"WHERE {where[0] or '1 = 1'}",
            where[1],
        )
    )
    language = get_language()
    codes = {code for code, _, _ in triples if code in DOCUMENT_TYPES}
    return {
        "types": sorted(((code, _type_label(language, code)) for code in codes), key=lambda pair: pair[1]),
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
