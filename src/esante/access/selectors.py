"""Reads that decide what a professional may see. Every read of patient data goes through here.

Deny by default: without a current grant nothing of the record is returned, and "missing" and
"forbidden" raise the same ``RecordNotFound``. An expired or revoked grant is no grant.
"""

import datetime
import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.db.models import Case, Exists, IntegerField, Model, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from esante.accounts.models import Professional
from esante.audit.catalogue import AuditAction, AuditOutcome
from esante.audit.models import AuditEvent
from esante.patients.models import Patient
from esante.patients.selectors import PatientSearchCriteria, patient_search_parts

from . import policy
from .models import AccessGrant, PatientBlock, RecordOpening

PAGE_SIZES = (10, 25, 50, 100)
DEFAULT_PAGE_SIZE = 25

M = TypeVar("M", bound=Model)


class RecordNotFound(Exception):
    """The record does not exist or the professional may not see it — deliberately the same error.

    ``reason`` and ``patient`` are for the audit trail only; never show them to the caller.
    """

    message = _("Ce dossier est introuvable ou vous n'y avez pas accès.")

    def __init__(self, reason: str, patient: Patient | None = None) -> None:
        self.reason = reason
        self.patient = patient
        super().__init__(self.message)


def _current(at: datetime.datetime) -> Q:
    return Q(revoked_at__isnull=True, granted_at__lte=at, expires_at__gt=at)


# A care or emergency grant wins over an own-documents one; then the one that lasts longest.
_MODE_RANK = Case(
    When(mode=AccessGrant.Mode.OWN_DOCUMENTS, then=Value(1)), default=Value(0), output_field=IntegerField()
)


def current_grant(
    *, professional: Professional, patient: Patient, at: datetime.datetime | None = None
) -> AccessGrant | None:
    """The professional's current grant on the patient's record, or None (expired/revoked = none)."""
    return (
        AccessGrant.objects.filter(_current(at or timezone.now()), professional=professional, patient=patient)
        .order_by(_MODE_RANK, "-expires_at")
        .first()
    )


def _parse_public_id(public_id: object) -> uuid.UUID | None:
    try:
        return public_id if isinstance(public_id, uuid.UUID) else uuid.UUID(str(public_id))
    except ValueError:
        return None


def _active_block(professional: Professional) -> Exists:
    return Exists(
        PatientBlock.objects.filter(patient=OuterRef("pk"), professional=professional, lifted_at__isnull=True)
    )


def access_patient_record(professional: Professional, public_id: object) -> tuple[Patient, AccessGrant]:
    """The patient and the professional's current grant, in one authorised step.

    Raises ``RecordNotFound`` when the patient does not exist, the professional's account is not
    active, the record is closed or opposed, the patient blocked the professional, or there is no
    current grant.
    """
    parsed = _parse_public_id(public_id)
    if parsed is None:
        raise RecordNotFound("unknown")
    patient = Patient.objects.filter(public_id=parsed).annotate(blocked=_active_block(professional)).first()
    if patient is None:
        raise RecordNotFound("unknown")
    state = {
        "professional_state": professional.state,
        "dossier_state": patient.dossier_state,
        "blocked": patient.blocked,  # type: ignore[attr-defined]
    }
    # The grant is looked up only when nothing else refuses the record: one query fewer.
    grant = (
        None
        if policy.record_refusal_reason(**state)
        else current_grant(professional=professional, patient=patient)
    )
    reason = policy.record_read_refusal_reason(**state, has_current_grant=grant is not None)
    if reason is not None or grant is None:
        raise RecordNotFound(reason or "no_grant", patient)
    return patient, grant


def record_refusal(*, professional: Professional, patient: Patient) -> str | None:
    """Why the professional may obtain no access to this record (``policy.record_refusal_reason``),
    or None; reads whether the patient blocked the professional."""
    return policy.record_refusal_reason(
        professional_state=professional.state,
        dossier_state=patient.dossier_state,
        blocked=PatientBlock.objects.filter(
            patient=patient, professional=professional, lifted_at__isnull=True
        ).exists(),
    )


@dataclass(frozen=True)
class AccessDialogState:
    """What the access dialog needs: the patient (never shown) and why access is impossible, if so."""

    patient: Patient
    refusal: str | None
    grant: AccessGrant | None


def access_dialog_state(
    professional: Professional, public_id: object, *, found_by_search: bool
) -> AccessDialogState:
    """The access dialog's view of a patient the professional reached.

    Reached: shown to them by a search a moment ago (``found_by_search``, the caller knows), or a
    grant of theirs on the record that is current or ended within ``ESANTE_RECENT_RECORDS_DAYS``
    (the "Mes patients" and "Mes derniers dossiers" lists). Raises ``RecordNotFound`` for an
    unknown patient and, alike, for one not reached: the dialog must not tell which ids exist.
    Without a search, a record no access can open (closed, opposed, the professional blocked)
    looks missing too, as on the record page; after a search the dialog says why (the search
    results show those states already).
    """
    parsed = _parse_public_id(public_id)
    patient = Patient.objects.filter(public_id=parsed).first() if parsed else None
    if patient is None:
        raise RecordNotFound("unknown")
    refusal = record_refusal(professional=professional, patient=patient)
    if not found_by_search:
        since = timezone.now() - datetime.timedelta(days=settings.ESANTE_RECENT_RECORDS_DAYS)
        if refusal:
            raise RecordNotFound(refusal, patient)
        if not AccessGrant.objects.filter(
            professional=professional, patient=patient, expires_at__gt=since
        ).exists():
            raise RecordNotFound("not_found_by_search", patient)
    grant = None if refusal else current_grant(professional=professional, patient=patient)
    return AccessDialogState(patient=patient, refusal=refusal, grant=grant)


def with_professional_columns(patients: QuerySet[Patient], professional: Professional) -> QuerySet[Patient]:
    """Adds the per-professional columns of the lists ("Alertes", "Parcours"), all in the same query.

    ``my_access_until`` / ``my_access_mode``: this professional's current grant; ``my_last_opening``:
    their last opening of the record; ``blocked_me``: the patient refused them;
    ``emergency_in_progress``: someone holds a current emergency access (a non-clinical flag).
    """
    now = timezone.now()
    mine = AccessGrant.objects.filter(
        _current(now), professional=professional, patient=OuterRef("pk")
    ).order_by(_MODE_RANK, "-expires_at")
    return patients.annotate(
        my_access_until=Subquery(mine.values("expires_at")[:1]),
        my_access_mode=Subquery(mine.values("mode")[:1]),
        my_last_opening=Subquery(
            RecordOpening.objects.filter(professional=professional, patient=OuterRef("pk"))
            .order_by("-opened_at")
            .values("opened_at")[:1]
        ),
        blocked_me=_active_block(professional),
        emergency_in_progress=Exists(
            AccessGrant.objects.filter(_current(now), patient=OuterRef("pk"), mode=AccessGrant.Mode.EMERGENCY)
        ),
    )


@dataclass(frozen=True)
class ListPage:
    """One page of a list, with the guide's "1 à N sur M éléments" numbers."""

    rows: list[Any]
    total: int
    page: int
    page_size: int
    refine: bool = False

    @property
    def start(self) -> int:
        return (self.page - 1) * self.page_size + 1 if self.total else 0

    @property
    def end(self) -> int:
        return min(self.page * self.page_size, self.total)

    @property
    def num_pages(self) -> int:
        return max(1, -(-self.total // self.page_size))

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.num_pages


def page_size_of(value: object) -> int:
    """A page size from the "Afficher 10 / 25 / 50 / 100 éléments" choice; anything else is 25."""
    try:
        size = int(str(value))
    except ValueError:
        return DEFAULT_PAGE_SIZE
    return size if size in PAGE_SIZES else DEFAULT_PAGE_SIZE


def page_number_of(value: object) -> int:
    try:
        return max(1, int(str(value)))
    except ValueError:
        return 1


def paginate(queryset: QuerySet[M], *, page: int, page_size: int, cap: int | None = None) -> ListPage:
    """Two queries: the count (stopped at ``cap``) and the page. Past the last page, the last page."""
    if cap is not None:
        # Counted without the per-row annotations: only the page needs them.
        matches = queryset.values("pk")[: cap + 1].count()
        refine, total = matches > cap, min(matches, cap)
    else:
        refine, total = False, queryset.count()
    page = min(page, max(1, -(-total // page_size)))
    offset = (page - 1) * page_size
    rows = list(queryset[offset : min(offset + page_size, total)]) if total else []
    return ListPage(rows=rows, total=total, page=page, page_size=page_size, refine=refine)


def recent_searches(professional: Professional, at: datetime.datetime | None = None) -> QuerySet[AuditEvent]:
    """The professional's searches that ran within the rate window: their audit events (a search
    leaves no other trace), read through the partial index on search events by actor."""
    since = (at or timezone.now()) - datetime.timedelta(seconds=settings.ESANTE_SEARCH_RATE_WINDOW_SECONDS)
    return AuditEvent.objects.filter(
        actor_id=professional.user_id,
        action=AuditAction.PATIENT_SEARCH.value,
        outcome=AuditOutcome.SUCCESS.value,
        created_at__gte=since,
    ).order_by()


def search_rate_exceeded(professional: Professional, at: datetime.datetime | None = None) -> bool:
    """True when the professional already ran ``ESANTE_SEARCH_RATE_LIMIT`` searches in the window."""
    limit = settings.ESANTE_SEARCH_RATE_LIMIT
    return recent_searches(professional, at)[:limit].count() >= limit


def shown_by_recent_search(
    professional: Professional, public_id: object, at: datetime.datetime | None = None
) -> bool:
    """True when one of the professional's searches within the rate window showed the patient
    ``public_id`` (its audit event lists the patients of the page it showed, under ``shown``)."""
    wanted = str(public_id)
    shown = recent_searches(professional, at).values_list("details", flat=True)
    return any(wanted in details.get("shown", ()) for details in shown[: settings.ESANTE_SEARCH_RATE_LIMIT])


def _with_capped_count(part: QuerySet[Patient], cap: int) -> QuerySet[Patient]:
    """``part`` with ``search_matches``: its matches counted up to ``cap + 1`` (the same index
    range scan that stops as ``paginate``'s count), as an uncorrelated subquery of the part's own
    query, which the databases evaluate once: the count costs no query of its own."""
    capped = part.values("pk")[: cap + 1].query
    sql, params = capped.get_compiler(using=part.db).as_sql()
    # The SQL is the compiler's own, its values passed as parameters.
    counted = RawSQL(f"SELECT COUNT(*) FROM ({sql}) capped", params)  # noqa: S608, S611
    return part.annotate(search_matches=counted)


def patient_search_page(
    *,
    professional: Professional,
    criteria: PatientSearchCriteria,
    page: int,
    page_size: int,
    columns: bool = True,
) -> ListPage:
    """One page of search results with the professional's columns; stops at ``ESANTE_SEARCH_MAX_RESULTS``.

    Rows carry identity and administrative data only; ``refine`` is set when more patients match
    than the cap. Each part of the search (``patient_search_parts``) is read once, its capped
    count in the same query: one query for a search of one part (a matricule: the rows come with
    their columns), three for a search by name (each part's sort keys, then the page's rows),
    whatever the page and the number of matches; one or two more only for a page past the last.
    Without ``columns``, the rows are the same patients without the lists' per-professional
    columns (``with_professional_columns``), for a channel that shows none of them (the API).
    """
    cap = settings.ESANTE_SEARCH_MAX_RESULTS
    parts = patient_search_parts(criteria)
    page = max(1, page)
    offset = (page - 1) * page_size
    if len(parts) == 1:
        rows_query = _with_capped_count(parts[0], cap)
        if columns:
            rows_query = with_professional_columns(rows_query, professional)
        # Never a row past the cap: the rows shown are the first ``cap`` matches at most.
        rows = list(rows_query[offset : min(offset + page_size, cap)]) if offset < cap else []
        if rows or page == 1:
            matches = rows[0].search_matches if rows else 0  # type: ignore[attr-defined]
            total = min(matches, cap)
            return ListPage(rows=rows, total=total, page=page, page_size=page_size, refine=matches > cap)
    # Each part's first sort keys, up to the page's end (all of them up to the cap for a page
    # past the cap, whose last page is then known), with the part's capped count.
    limit = min(offset + page_size, cap) if offset < cap else cap
    keys: list[tuple[str, str, int]] = []
    matches = 0
    for part in parts:
        found = list(
            _with_capped_count(part, cap).values_list(  # type: ignore[misc]
                "birth_name_folded", "first_names_folded", "pk", "search_matches"
            )[:limit]
        )
        matches += found[0][3] if found else 0
        keys += [(birth, first, pk) for birth, first, pk, _ in found]
    refine, total = matches > cap, min(matches, cap)
    page = min(page, max(1, -(-total // page_size)))
    offset = (page - 1) * page_size
    end = min(offset + page_size, total)
    # Folded names are compared as the databases do ("C"/binary order): by code point.
    page_ids = [pk for _, _, pk in sorted(keys)[offset:end]]
    patients = Patient.objects.filter(pk__in=page_ids)
    if columns:
        patients = with_professional_columns(patients, professional)
    found_rows = {p.pk: p for p in patients}
    rows = [found_rows[pk] for pk in page_ids]
    return ListPage(rows=rows, total=total, page=page, page_size=page_size, refine=refine)


def my_patients(professional: Professional) -> QuerySet[Patient]:
    """ "Mes patients": patients whose record the professional may open now, by name.

    A current grant, an active record, no block by the patient.
    """
    if professional.state != Professional.State.ACTIVE:
        return Patient.objects.none()
    now = timezone.now()
    queryset = Patient.objects.filter(
        Exists(AccessGrant.objects.filter(_current(now), professional=professional, patient=OuterRef("pk"))),
        dossier_state=Patient.DossierState.ACTIVE,
    ).exclude(_active_block(professional))
    return with_professional_columns(queryset, professional).order_by(
        "birth_name_folded", "first_names_folded", "pk"
    )


def recent_records(professional: Professional) -> QuerySet[Patient]:
    """ "Mes derniers dossiers": records the professional opened in the last days, latest first.

    Identity only, as in the search results; opening one again goes through the grant check.
    """
    if professional.state != Professional.State.ACTIVE:
        return Patient.objects.none()
    since = timezone.now() - datetime.timedelta(days=settings.ESANTE_RECENT_RECORDS_DAYS)
    opened = RecordOpening.objects.filter(professional=professional, opened_at__gte=since).values("patient")
    queryset = Patient.objects.filter(pk__in=opened)
    return with_professional_columns(queryset, professional).order_by("-my_last_opening", "pk")
