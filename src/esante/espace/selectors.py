"""What a patient reads on the patients' portal: their own record, their journal, the register
of professionals. Every query is scoped by the account's patient, so another patient's object
is simply not found (deny by default)."""

import datetime
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import connections, router
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import get_language, gettext

from esante.access.models import AccessGrant, PatientBlock
from esante.accounts.models import Profession, Professional
from esante.audit.catalogue import AuditAction, AuditOutcome
from esante.audit.models import AuditEvent
from esante.dispensing.models import CertifiedCopy, Dispensation
from esante.documents.models import Document, Prescription
from esante.patients.models import Patient
from esante.tlog.models import LogCheckpoint, LogLeaf

from .models import PatientAccount

JOURNAL_PAGE_SIZE = 50

#: The journal's « Type » filter: each kind is a set of stored action values.
JOURNAL_KINDS: dict[str, tuple[str, ...]] = {
    "acces": (
        "access.grant",
        "access.emergency",
        "access.revoke",
        "access.dialog",
        "patient.read",
        "record.open",
        "record.view",
        "record.search",
        "patient.search",
    ),
    "documents": ("document.search", "document.read", "document.content", "document.submit"),
    "dispensations": (
        "prescription.search",
        "prescription.dispense",
        "dispensation.withdraw",
        "dispensation.certify",
        "dispensation.copy",
        "dispensation.verify",
    ),
    "choix": (
        "patient.block",
        "patient.unblock",
        "document.hide",
        "document.show",
        "record.oppose",
        "record.reopen",
        "espace.notifications",
    ),
    "agence": (
        "patient.create",
        "patient.update",
        "patient.admin.read",
        "access.admin.read",
        "journal.export",
        "espace.letter.issue",
    ),
}


def journal_kind_label(kind: str) -> str:
    return journal_kind_labels()[kind]


def journal_kind_labels() -> dict[str, str]:
    """The « Type » filter's kinds and their names in the active language (read once a
    language and process: the catalogues do not change while it runs)."""
    language = get_language()
    labels = _KIND_LABELS.get(language)
    if labels is None:
        labels = _KIND_LABELS[language] = _journal_kind_labels()
    return dict(labels)


_KIND_LABELS: dict[str | None, dict[str, str]] = {}
_PROFESSION_LABELS: dict[str | None, dict[str, str]] = {}


def _journal_kind_labels() -> dict[str, str]:
    return {
        "acces": gettext("Accès au dossier"),
        "documents": gettext("Documents"),
        "dispensations": gettext("Prescriptions et délivrances"),
        "choix": gettext("Mes choix"),
        "agence": gettext("Agence eSanté"),
    }


def own_document(patient: Patient, document_id: uuid.UUID) -> Document | None:
    """One of the patient's own documents (hidden ones included: they are the patient's)."""
    return Document.objects.filter(patient=patient, public_id=document_id).first()


def own_certified_copy(patient: Patient, dispensation_id: uuid.UUID) -> CertifiedCopy | None:
    """The current certified copy of one of the patient's own dispensations, or None."""
    return (
        CertifiedCopy.objects.filter(
            dispensation__public_id=dispensation_id,
            dispensation__prescription__document__patient=patient,
            superseded_at__isnull=True,
        )
        .order_by("-created_at")
        .first()
    )


def own_documents(patient: Patient) -> QuerySet[Document]:
    return (
        Document.objects.filter(patient=patient)
        .select_related("prescription")
        .order_by("-clinical_at", "-pk")
    )


@dataclass
class PrescriptionView:
    prescription: Prescription
    lines: list[dict[str, Any]]
    dispensations: list[Dispensation]


def own_prescriptions(patient: Patient) -> list[PrescriptionView]:
    """The patient's prescriptions, newest first, each line with what is left to deliver, and
    their dispensations (withdrawn ones marked) — four queries whatever their number."""
    prescriptions = list(
        Prescription.objects.filter(document__patient=patient)
        .select_related("document")
        .prefetch_related("lines")
        .order_by("-prescribed_at", "-pk")
    )
    dispensations = (
        Dispensation.objects.filter(prescription__in=prescriptions)
        .prefetch_related("lines", "certified_copies")
        .order_by("dispensed_at", "pk")
    )
    by_prescription: dict[int, list[Dispensation]] = {}
    for dispensation in dispensations:
        by_prescription.setdefault(dispensation.prescription_id, []).append(dispensation)
    views = []
    for prescription in prescriptions:
        done = [d for d in by_prescription.get(prescription.pk, []) if d.withdrawn_at is None]
        delivered: dict[int, int] = {}
        for dispensation in done:
            for line in dispensation.lines.all():
                delivered[line.prescription_line_id] = (
                    delivered.get(line.prescription_line_id, 0) + line.quantity_delivered
                )
        lines = [
            {
                "line": line,
                "delivered": min(delivered.get(line.pk, 0), line.quantity),
                "remaining": max(line.quantity - delivered.get(line.pk, 0), 0),
            }
            for line in prescription.lines.all()
        ]
        views.append(PrescriptionView(prescription, lines, by_prescription.get(prescription.pk, [])))
    return views


def active_blocks(patient: Patient) -> QuerySet[PatientBlock]:
    return (
        PatientBlock.objects.filter(patient=patient, lifted_at__isnull=True)
        .select_related("professional")
        .order_by("professional__last_name", "professional__first_name")
    )


def professionals_named(name: str, limit: int = 20) -> list[Professional]:
    """The register's professionals whose last name starts with ``name`` (at least two letters)."""
    name = name.strip()
    if len(name) < 2:
        return []
    return list(
        Professional.objects.filter(last_name__istartswith=name).order_by("last_name", "first_name")[:limit]
    )


# --- the journal ------------------------------------------------------------------------------


@dataclass(frozen=True)
class JournalFilters:
    since: datetime.date | None = None
    until: datetime.date | None = None
    kind: str = ""
    professional: str = ""  # a professional's matricule

    def as_query(self) -> dict[str, str]:
        query = {
            "du": self.since.isoformat() if self.since else "",
            "au": self.until.isoformat() if self.until else "",
            "type": self.kind,
            "professionnel": self.professional,
        }
        return {k: v for k, v in query.items() if v}


@dataclass
class JournalLine:
    event: AuditEvent | None  # None on the journal's page, which reads only the columns it shows
    when: datetime.datetime
    who: str
    who_detail: str
    what: str
    outcome: str
    refused: bool
    motif: str
    emergency: bool
    software: str
    subject: str
    # (leaf index, size of the signed checkpoint covering it) once the event is in the public log.
    logged: tuple[int, int] | None = None
    # Whether that checkpoint is cosigned by the witness (``tlog.witnessing``).
    cosigned: bool = False
    # The event's number in the chain (its page in the journal: ``journal_entry``), once it has one.
    sequence: int | None = None


@dataclass
class JournalPage:
    lines: list[JournalLine]
    next_before: int | None
    filters: JournalFilters
    professionals: list[Professional] = field(default_factory=list)


def journal_events(patient: Patient, filters: JournalFilters) -> QuerySet[AuditEvent]:
    """The events naming the patient, newest first, as filtered (the index ``(patient, id)``
    serves the order: an event has its id when it is written, its sequence possibly later)."""
    events = AuditEvent.objects.filter(patient=patient)
    tz = timezone.get_current_timezone()
    if filters.since:
        events = events.filter(
            created_at__gte=datetime.datetime.combine(filters.since, datetime.time.min, tzinfo=tz)
        )
    if filters.until:
        events = events.filter(
            created_at__lt=datetime.datetime.combine(
                filters.until + datetime.timedelta(days=1), datetime.time.min, tzinfo=tz
            )
        )
    if filters.kind in JOURNAL_KINDS:
        events = events.filter(action__in=JOURNAL_KINDS[filters.kind])
    if filters.professional:
        events = events.filter(actor__professional__matricule=filters.professional)
    return events.order_by("-id")


def _who(
    event: AuditEvent, account_user_id: int, cache: dict[object, tuple[str, str]] | None = None
) -> tuple[str, str]:
    """Who acted, in the patient's words (computed once per actor and page)."""
    key = event.actor_id if event.actor_id is not None else f"label:{event.actor_label}"
    if cache is not None and key in cache:
        return cache[key]
    who = _who_uncached(event, account_user_id)
    if cache is not None:
        cache[key] = who
    return who


def _who_uncached(event: AuditEvent, account_user_id: int) -> tuple[str, str]:
    if event.actor_id is not None and event.actor_id == account_user_id:
        return gettext("Vous"), ""
    if event.actor_id is not None:
        professional = Professional.objects.filter(user_id=event.actor_id).first()
        representative = (
            None
            if professional is not None
            else PatientAccount.objects.select_related("patient").filter(user_id=event.actor_id).first()
        )
        return _person_words(professional, representative) or (gettext("Agence eSanté"), gettext("opérateur"))
    return _label_words(event.actor_label or "")


def profession_labels() -> dict[str, str]:
    """The professions' names in the active language, looked up once for a page (a model's
    ``get_profession_display`` costs more than the rest of a journal line), once a language
    and process."""
    language = get_language()
    labels = _PROFESSION_LABELS.get(language)
    if labels is None:
        labels = _PROFESSION_LABELS[language] = {value: str(label) for value, label in Profession.choices}
    return labels


def professional_label(professional: Professional, labels: dict[str, str]) -> str:
    """``str(professional)``, with the professions' names from ``labels``."""
    profession = labels.get(professional.profession, professional.profession)
    return f"{professional.last_name.upper()} {professional.first_name} ({profession})"


def _person_words(
    professional: Professional | None,
    representative: "PatientAccount | None",
    labels: dict[str, str] | None = None,
) -> tuple[str, str] | None:
    if professional is not None:
        detail = (labels or profession_labels()).get(professional.profession, professional.profession)
        if professional.organisation:
            detail = f"{detail}, {professional.organisation}"
        return f"{professional.last_name.upper()} {professional.first_name}", detail
    if representative is not None:
        return representative.patient.display_name, gettext("représentant légal")
    return None


def _label_words(label: str) -> tuple[str, str]:
    if label.startswith(("operator", "system:operator")):
        return gettext("Agence eSanté"), gettext("opérateur")
    if label.startswith("system"):
        return gettext("Plateforme eSanté"), ""
    return gettext("Personne non identifiée"), ""


def actors_words(
    rows: list[AuditEvent], account_user_id: int, known: Iterable[Professional] = ()
) -> dict[object, tuple[str, str]]:
    """Who acted in ``rows``, in the patient's words, keyed as ``_who`` keys its cache: at most
    two queries (the professionals not among ``known``, then the representatives) whatever the
    number of rows."""
    return _actors_words(
        {row.actor_id for row in rows if row.actor_id is not None},
        {row.actor_label or "" for row in rows if row.actor_id is None},
        account_user_id,
        known,
    )


def _actors_words(
    actor_ids: set[int], anonymous_labels: set[str], account_user_id: int, known: Iterable[Professional] = ()
) -> dict[object, tuple[str, str]]:
    """``actors_words`` from the actors' user ids and the labels of the events without one."""
    ids = actor_ids - {account_user_id}
    professionals = {p.user_id: p for p in known if p.user_id in ids}
    if ids - set(professionals):
        professionals.update(
            (p.user_id, p) for p in Professional.objects.filter(user_id__in=ids - set(professionals))
        )
    others = ids - set(professionals)
    representatives = (
        {a.user_id: a for a in PatientAccount.objects.select_related("patient").filter(user_id__in=others)}
        if others
        else {}
    )
    words: dict[object, tuple[str, str]] = {account_user_id: (gettext("Vous"), "")}
    labels = profession_labels()
    for user_id in ids:
        words[user_id] = _person_words(professionals.get(user_id), representatives.get(user_id), labels) or (
            gettext("Agence eSanté"),
            gettext("opérateur"),
        )
    for label in anonymous_labels:
        words[f"label:{label}"] = _label_words(label)
    return words


def journal_line(
    event: AuditEvent,
    *,
    account_user_id: int,
    titles: dict[str, str],
    actors: dict[object, tuple[str, str]] | None = None,
    language: str | None = None,
) -> JournalLine:
    """One event in plain words, from the catalogue's labels in ``language`` (default: the
    active language)."""
    line = _words(
        action=event.action,
        outcome=event.outcome,
        details=event.details or {},
        motif=event.motif,
        when=event.created_at,
        who=_who(event, account_user_id, actors),
        subject=titles.get(event.object_id, "") if event.object_type == "document" else "",
        language=language,
    )
    line.event = event
    line.sequence = event.sequence
    return line


def _action_label(action: str, language: str | None) -> str:
    try:
        return AuditAction.of(action).label(language)
    except ValueError:
        return action


def _words(
    *,
    action: str,
    outcome: str,
    details: dict[str, Any],
    motif: str,
    when: datetime.datetime,
    who: tuple[str, str],
    subject: str,
    language: str | None,
    what: str | None = None,
) -> JournalLine:
    via = details.get("via") or {}
    return JournalLine(
        event=None,
        when=when,
        who=who[0],
        who_detail=who[1],
        what=_action_label(action, language) if what is None else what,
        outcome=AuditOutcome(outcome).label(language),
        refused=outcome != AuditOutcome.SUCCESS,
        motif=motif,
        emergency=action == AuditAction.ACCESS_EMERGENCY.value or details.get("mode") == "emergency",
        software=str(via.get("client_name", "")) if isinstance(via, dict) else "",
        subject=subject,
    )


_PROFESSIONALS = Professional._meta.db_table
_LARGEST_ID = 2**63 - 1

#: The kinds of the « Type » filter, as SQL lists of their actions (values of the closed catalogue).
_KIND_SQL = {kind: ", ".join(f"'{action}'" for action in actions) for kind, actions in JOURNAL_KINDS.items()}


def _page_rows(
    patient: Patient, filters: JournalFilters, before: int | None
) -> tuple[list[tuple[Any, ...]], str]:
    """The rows of one page of the journal (``JOURNAL_PAGE_SIZE`` + 1, newest first, older than id
    ``before``) in one query: only the columns the page shows, each with its leaf index in the
    public log and the sizes of the latest checkpoint and of the latest one the witness cosigned.
    Written as SQL: the ORM's compiling of this query cost more than running it. Returns the rows
    and the alias of the database that served them (the standby for a ``lag_tolerant`` read)."""
    alias = router.db_for_read(AuditEvent)
    ops = connections[alias].ops
    conditions = ["e.patient_id = %s"]
    params: list[Any] = [patient.pk]
    tz = timezone.get_current_timezone()
    if filters.since:
        conditions.append("e.created_at >= %s")
        params.append(
            ops.adapt_datetimefield_value(
                datetime.datetime.combine(filters.since, datetime.time.min, tzinfo=tz)
            )
        )
    if filters.until:
        conditions.append("e.created_at < %s")
        params.append(
            ops.adapt_datetimefield_value(
                datetime.datetime.combine(
                    filters.until + datetime.timedelta(days=1), datetime.time.min, tzinfo=tz
                )
            )
        )
    if filters.kind in _KIND_SQL:
        conditions.append(f"e.action IN ({_KIND_SQL[filters.kind]})")
    if filters.professional:
        conditions.append(f"e.actor_id = (SELECT p.user_id FROM {_PROFESSIONALS} p WHERE p.matricule = %s)")  # noqa: S608 - fixed names
        params.append(filters.professional)
    if before is not None:
        conditions.append("e.id < %s")
        params.append(min(before, _LARGEST_ID))  # any larger number means « from the newest »
    checkpoints = LogCheckpoint._meta.db_table
    # Fixed names only: every value is a parameter.
    sql = (
        "SELECT e.id, e.sequence, e.created_at, e.actor_id, e.actor_label, e.action, e.outcome,"  # noqa: S608
        ' e.object_type, e.object_id, e.motif, e.details, l."index",'
        f" (SELECT MAX(c.size) FROM {checkpoints} c),"
        f" (SELECT MAX(c.size) FROM {checkpoints} c WHERE c.cosignature <> '')"
        f" FROM {AuditEvent._meta.db_table} e LEFT JOIN {LogLeaf._meta.db_table} l ON l.event_id = e.id"
        f" WHERE {' AND '.join(conditions)} ORDER BY e.id DESC LIMIT {JOURNAL_PAGE_SIZE + 1}"
    )
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall(), alias


def _aware(value: datetime.datetime | str) -> datetime.datetime:
    """A ``created_at`` as the driver returns it (SQLite: the text of a UTC time) made aware."""
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=datetime.UTC)


def journal_page(
    account_patient: Patient,
    *,
    account_user_id: int,
    filters: JournalFilters,
    before: int | None,
    professionals: list[Professional] | None = None,
) -> JournalPage:
    """One page of the journal (``JOURNAL_PAGE_SIZE`` lines, older than event id ``before``),
    in a bounded number of queries whatever the number of events: the events with their place
    in the public log, then only when the page needs them the documents it names and the actors
    who are not among the professionals of the filter list."""
    if professionals is None:
        professionals = journal_professionals(account_patient)
    rows, _ = _page_rows(account_patient, filters, before)
    more = len(rows) > JOURNAL_PAGE_SIZE
    rows = rows[:JOURNAL_PAGE_SIZE]
    # (id, sequence, created_at, actor_id, actor_label, action, outcome, object_type, object_id,
    #  motif, details, leaf index, checkpoint size, cosigned checkpoint size)
    public_ids = [
        parsed for parsed in {_uuid(row[8]) for row in rows if row[7] == "document" and row[8]} if parsed
    ]
    titles = (
        {
            str(public_id): title
            for public_id, title in Document.objects.filter(
                patient=account_patient, public_id__in=public_ids
            ).values_list("public_id", "title")
        }
        if public_ids
        else {}
    )
    # The filter's professionals are most of the page's actors: known without another query.
    actors = _actors_words(
        {row[3] for row in rows if row[3] is not None},
        {row[4] or "" for row in rows if row[3] is None},
        account_user_id,
        known=professionals,
    )
    language = get_language()
    what: dict[str, str] = {}
    lines = []
    for row in rows:
        (pk, sequence, created_at, actor_id, actor_label, action, outcome, object_type, object_id) = row[:9]
        motif, details, index, size, cosigned = row[9:]
        if isinstance(details, str):
            details = json.loads(details) if details not in ("{}", "") else {}
        if action not in what:
            what[action] = _action_label(action, language)
        line = _words(
            action=action,
            outcome=outcome,
            details=details if isinstance(details, dict) else {},
            motif=motif,
            when=_aware(created_at),
            who=actors[actor_id if actor_id is not None else f"label:{actor_label or ''}"],
            subject=titles.get(object_id, "") if object_type == "document" else "",
            language=language,
            what=what[action],
        )
        line.sequence = sequence
        if index is not None and size is not None and index < size:
            line.logged = (index, size)
            line.cosigned = cosigned == size
        lines.append(line)
    return JournalPage(
        lines=lines,
        next_before=rows[-1][0] if more and rows else None,
        filters=filters,
        professionals=professionals,
    )


def own_event(patient: Patient, sequence: int) -> AuditEvent | None:
    """One event of the patient's own journal, by its number, or None."""
    return AuditEvent.objects.filter(patient=patient, sequence=sequence).first()


#: What the journal reads of a professional (the filter's choices, the actors' words).
_PROFESSIONAL_COLUMNS = (
    "id",
    "user_id",
    "matricule",
    "profession",
    "last_name",
    "first_name",
    "organisation",
)


def journal_professionals(patient: Patient) -> list[Professional]:
    """The professionals who ever had an access to the record (the filter's choices): read from
    the grants and the blocks, narrow tables, rather than by scanning the whole journal. One
    query, written as SQL (the ORM's compiling of it cost more than running it); the instances
    hold only ``_PROFESSIONAL_COLUMNS``."""
    alias = router.db_for_read(Professional)
    columns = ", ".join(f"p.{name}" for name in _PROFESSIONAL_COLUMNS)
    grants, blocks = AccessGrant._meta.db_table, PatientBlock._meta.db_table
    # Fixed names only: every value is a parameter.
    sql = (
        f"SELECT {columns} FROM {_PROFESSIONALS} p"  # noqa: S608
        f" WHERE p.id IN (SELECT g.professional_id FROM {grants} g WHERE g.patient_id = %s)"
        f" OR p.id IN (SELECT b.professional_id FROM {blocks} b WHERE b.patient_id = %s)"
        " ORDER BY p.last_name, p.first_name"
    )
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, [patient.pk, patient.pk])
        rows = cursor.fetchall()
    return [Professional.from_db(alias, _PROFESSIONAL_COLUMNS, row) for row in rows]


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
