"""What a patient reads on the patients' portal: their own record, their journal, the register
of professionals. Every query is scoped by the account's patient, so another patient's object
is simply not found (deny by default)."""

import datetime
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import get_language, gettext

from esante.access.models import AccessGrant, PatientBlock
from esante.accounts.models import Profession, Professional
from esante.audit.catalogue import AuditAction, AuditOutcome
from esante.audit.models import AuditEvent
from esante.audit.selectors import NEWEST_FIRST
from esante.dispensing.models import CertifiedCopy, Dispensation
from esante.documents.models import Document, Prescription
from esante.patients.models import Patient
from esante.tlog.selectors import inclusions_for_events

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
    """The « Type » filter's kinds and their names in the active language."""
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
    event: AuditEvent
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


@dataclass
class JournalPage:
    lines: list[JournalLine]
    next_before: int | None
    filters: JournalFilters
    professionals: list[Professional] = field(default_factory=list)


def journal_events(patient: Patient, filters: JournalFilters) -> QuerySet[AuditEvent]:
    """The events naming the patient, newest first, as filtered (the index ``(patient,
    sequence)`` serves the order)."""
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
    return events.order_by(NEWEST_FIRST)


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
    ``get_profession_display`` costs more than the rest of a journal line)."""
    return {value: str(label) for value, label in Profession.choices}


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
    ids = {row.actor_id for row in rows if row.actor_id is not None and row.actor_id != account_user_id}
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
    for row in rows:
        if row.actor_id is None:
            words.setdefault(f"label:{row.actor_label}", _label_words(row.actor_label or ""))
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
    try:
        what = AuditAction.of(event.action).label(language)
    except ValueError:
        what = event.action
    who, who_detail = _who(event, account_user_id, actors)
    details = event.details or {}
    via = details.get("via") or {}
    return JournalLine(
        event=event,
        when=event.created_at,
        who=who,
        who_detail=who_detail,
        what=what,
        outcome=AuditOutcome(event.outcome).label(language),
        refused=event.outcome != AuditOutcome.SUCCESS,
        motif=event.motif,
        emergency=event.action == AuditAction.ACCESS_EMERGENCY.value or details.get("mode") == "emergency",
        software=str(via.get("client_name", "")) if isinstance(via, dict) else "",
        subject=titles.get(event.object_id, "") if event.object_type == "document" else "",
    )


def journal_page(
    account_patient: Patient,
    *,
    account_user_id: int,
    filters: JournalFilters,
    before: int | None,
    professionals: list[Professional] | None = None,
) -> JournalPage:
    """One page of the journal (``JOURNAL_PAGE_SIZE`` lines, older than sequence ``before``),
    in a bounded number of queries whatever the number of events: the events, the professionals
    of the filter list (most of the actors), the other actors, the documents the page names, the
    public log's coverage."""
    events = journal_events(account_patient, filters)
    if before is not None:
        events = events.filter(sequence__lt=before)
    rows = list(
        events.defer("canonical", "prev_hash", "hash", "mac", "client_address")[: JOURNAL_PAGE_SIZE + 1]
    )
    more = len(rows) > JOURNAL_PAGE_SIZE
    rows = rows[:JOURNAL_PAGE_SIZE]
    ids = {row.object_id for row in rows if row.object_type == "document" and row.object_id}
    public_ids = [parsed for parsed in map(_uuid, ids) if parsed is not None]
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
    if professionals is None:
        professionals = journal_professionals(account_patient)
    # The filter's professionals are most of the page's actors: known without another query.
    actors = actors_words(rows, account_user_id, known=professionals)
    logged = inclusions_for_events([row.pk for row in rows])
    language = get_language()
    lines = [
        journal_line(row, account_user_id=account_user_id, titles=titles, actors=actors, language=language)
        for row in rows
    ]
    for line in lines:
        line.logged = logged.get(line.event.pk)
    return JournalPage(
        lines=lines,
        next_before=rows[-1].sequence if more and rows else None,
        filters=filters,
        professionals=professionals,
    )


def own_event(patient: Patient, sequence: int) -> AuditEvent | None:
    """One event of the patient's own journal, by its number, or None."""
    return AuditEvent.objects.filter(patient=patient, sequence=sequence).first()


def journal_professionals(patient: Patient) -> list[Professional]:
    """The professionals who ever had an access to the record (the filter's choices): read from
    the grants, a narrow table, rather than by scanning the whole journal."""
    granted = AccessGrant.objects.filter(patient=patient).values("professional_id")
    blocked = PatientBlock.objects.filter(patient=patient).values("professional_id")
    return list(
        Professional.objects.filter(Q(pk__in=granted) | Q(pk__in=blocked)).order_by("last_name", "first_name")
    )


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
