"""Writes of the access app: grants, record openings, patient blocks, searches.

Each successful write runs in one transaction whose last statement is its audit event. A
refused write raises ``AccessRefused`` after its transaction rolled back and records the
refusal's audit event in a transaction of its own, so the refusal stays traced and nothing
else is written.
"""

import datetime
import threading
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from esante.accounts.models import Professional
from esante.audit.catalogue import AuditAction
from esante.audit.models import AuditEvent
from esante.audit.services import audit_record
from esante.core.replica import lag_tolerant
from esante.patients.models import Patient
from esante.patients.selectors import PatientSearchCriteria

from . import policy, selectors
from .models import AccessGrant, PatientBlock, RecordOpening
from .selectors import ListPage, record_refusal

MOTIF_MAX_LENGTH = 500


class AccessRefused(Exception):
    """An access the rules refuse. ``code`` is for the trail, ``message`` for the professional.

    The message is in the language active when the refusal is raised (the request's).
    """

    MESSAGES = {
        "professional_inactive": _(
            "Votre compte professionnel n'est pas actif : l'accès aux dossiers est impossible."
        ),
        "record_closed": _("Le dossier de ce patient est fermé : aucun accès n'est possible."),
        "record_opposed": _("Le patient s'est opposé à son dossier eDocuments : aucun accès n'est possible."),
        "blocked": _("Le patient a refusé que vous accédiez à son dossier : aucun accès n'est possible."),
        "motif_missing": _("Le motif est obligatoire."),
        "motif_too_long": _("Le motif ne doit pas dépasser 500 caractères."),
        "motif_too_short": format_lazy(
            _("L'accès en urgence exige un motif détaillé (au moins {length} caractères)."),
            length=policy.EMERGENCY_MOTIF_MIN_LENGTH,
        ),
        "conditions_not_accepted": _("Vous devez accepter les conditions d'accès."),
        "emergency_not_allowed": _("L'accès en urgence n'est pas ouvert à votre profession."),
    }

    def __init__(self, code: str) -> None:
        self.code = code
        self.message = str(self.MESSAGES[code])
        super().__init__(self.message)


def _check_motif(mode: str, motif: str) -> None:
    if len(motif) > MOTIF_MAX_LENGTH:
        raise AccessRefused("motif_too_long")
    if mode == AccessGrant.Mode.EMERGENCY and len(motif) < policy.EMERGENCY_MOTIF_MIN_LENGTH:
        raise AccessRefused("motif_missing" if not motif else "motif_too_short")
    if mode == AccessGrant.Mode.CARE and not motif:
        raise AccessRefused("motif_missing")


@transaction.atomic
def _grant_in_transaction(
    *,
    mode: str,
    professional: Professional,
    patient: Patient,
    motif: str,
    conditions_accepted: bool,
    client_address: str | None,
) -> AccessGrant:
    # The patient row is locked, so a concurrent closing of the record waits for this grant.
    locked = Patient.objects.select_for_update().get(pk=patient.pk)
    if mode == AccessGrant.Mode.EMERGENCY and not policy.may_use_emergency_access(professional.profession):
        raise AccessRefused("emergency_not_allowed")
    reason = record_refusal(professional=professional, patient=locked)
    if reason:
        raise AccessRefused(reason)
    _check_motif(mode, motif)
    if not conditions_accepted:
        raise AccessRefused("conditions_not_accepted")
    now = timezone.now()
    lifetime = (
        policy.emergency_duration()
        if mode == AccessGrant.Mode.EMERGENCY
        else policy.access_duration(professional.profession)
    )
    grant = AccessGrant.objects.create(
        professional=professional,
        patient=locked,
        mode=mode,
        motif=motif,
        conditions_version=settings.ESANTE_ACCESS_CONDITIONS_VERSION,
        granted_at=now,
        expires_at=now + lifetime,
    )
    audit_record(
        action=AuditAction.ACCESS_EMERGENCY
        if mode == AccessGrant.Mode.EMERGENCY
        else AuditAction.ACCESS_GRANT,
        actor=professional.user,
        patient=locked,
        object_type="AccessGrant",
        object_id=grant.pk,
        motif=motif,
        client_address=client_address,
        details={
            "mode": mode,
            "expires_at": grant.expires_at.isoformat(),
            "conditions_version": grant.conditions_version,
        },
    )
    return grant


def _grant(
    *,
    mode: str,
    professional: Professional,
    patient: Patient,
    motif: str,
    conditions_accepted: bool,
    client_address: str | None,
) -> AccessGrant:
    motif = " ".join(motif.split())
    try:
        return _grant_in_transaction(
            mode=mode,
            professional=professional,
            patient=patient,
            motif=motif,
            conditions_accepted=conditions_accepted,
            client_address=client_address,
        )
    except AccessRefused as refusal:
        audit_record(
            action=AuditAction.ACCESS_EMERGENCY
            if mode == AccessGrant.Mode.EMERGENCY
            else AuditAction.ACCESS_GRANT,
            outcome=AuditEvent.Outcome.REFUSED,
            actor=professional.user,
            patient=patient,
            motif=motif[:MOTIF_MAX_LENGTH],
            client_address=client_address,
            details={"mode": mode, "reason": refusal.code},
        )
        raise


def access_grant_care(
    *,
    professional: Professional,
    patient: Patient,
    motif: str,
    conditions_accepted: bool,
    client_address: str | None = None,
) -> AccessGrant:
    """Opens a care access ("J'accède au dossier du patient en engageant ma responsabilité.").

    Needs an active professional, an active record, no block by the patient, a motif and the
    accepted access conditions. Lasts ``policy.access_duration(profession)``. Raises
    ``AccessRefused`` (and traces the refusal) otherwise.
    """
    return _grant(
        mode=AccessGrant.Mode.CARE,
        professional=professional,
        patient=patient,
        motif=motif,
        conditions_accepted=conditions_accepted,
        client_address=client_address,
    )


def access_grant_own_documents(
    *,
    professional: Professional,
    patient: Patient,
    conditions_accepted: bool,
    motif: str = "",
    client_address: str | None = None,
) -> AccessGrant:
    """Opens a read-only access to the documents this professional authored.

    Same conditions as a care access except that the motif is optional: the professional only
    reads back what they wrote. Raises ``AccessRefused`` (and traces the refusal).
    """
    return _grant(
        mode=AccessGrant.Mode.OWN_DOCUMENTS,
        professional=professional,
        patient=patient,
        motif=motif,
        conditions_accepted=conditions_accepted,
        client_address=client_address,
    )


def access_grant_emergency(
    *,
    professional: Professional,
    patient: Patient,
    motif: str,
    conditions_accepted: bool,
    client_address: str | None = None,
) -> AccessGrant:
    """Breaks the glass: a short access for doctors, nurses and midwives, traced as an emergency.

    Needs a detailed motif (``policy.EMERGENCY_MOTIF_MIN_LENGTH`` characters); never overrides a
    closed or opposed record or a block by the patient. Lasts ``policy.emergency_duration()``.
    Raises ``AccessRefused`` (and traces the refusal) otherwise.
    """
    return _grant(
        mode=AccessGrant.Mode.EMERGENCY,
        professional=professional,
        patient=patient,
        motif=motif,
        conditions_accepted=conditions_accepted,
        client_address=client_address,
    )


@transaction.atomic
def access_grant_revoke(*, grant: AccessGrant, actor: Any, reason: str) -> AccessGrant:
    """Ends a grant now (operator action). A revoked grant behaves like none; the row stays."""
    grant = AccessGrant.objects.select_for_update().get(pk=grant.pk)
    if grant.revoked_at is None:
        grant.revoked_at = timezone.now()
        grant.revoked_reason = reason[:MOTIF_MAX_LENGTH]
        grant.save(update_fields=["revoked_at", "revoked_reason"])
        audit_record(
            action=AuditAction.ACCESS_REVOKE,
            actor=actor,
            patient=grant.patient,
            object_type="AccessGrant",
            object_id=grant.pk,
            motif=grant.revoked_reason,
            details={"professional": grant.professional.matricule, "mode": grant.mode},
        )
    return grant


@transaction.atomic
def record_open(
    *, professional: Professional, patient: Patient, grant: AccessGrant, client_address: str | None = None
) -> RecordOpening:
    """Notes that a professional opened a record they hold ``grant`` for, and traces it.

    The caller has authorised the opening through ``selectors.access_patient_record``.
    """
    opening = RecordOpening.objects.create(professional=professional, patient=patient, grant=grant)
    audit_record(
        action=AuditAction.RECORD_OPEN,
        actor=professional.user,
        patient=patient,
        object_type="AccessGrant",
        object_id=grant.pk,
        motif=grant.motif,
        client_address=client_address,
        details={"mode": grant.mode, "emergency": grant.mode == AccessGrant.Mode.EMERGENCY},
    )
    return opening


class SearchRateLimited(Exception):
    """The professional ran ``ESANTE_SEARCH_RATE_LIMIT`` searches within the window already."""


# When a professional's searches reached the limit, until when they stay refused (professional
# id -> time), as this process saw it under the professional's row lock. Only a shortcut: a search
# it refuses runs nothing and counts nothing, without a query; the limit itself is the count made
# under the lock (``_search_counted``), which every search goes through, so a process that has not
# seen a professional reach the limit (another worker) still refuses exactly, after the search ran.
_limited_until: dict[int, datetime.datetime] = {}
_limited_lock = threading.Lock()
_LIMITED_MAX = 10_000


def _limited_now(professional: Professional, now: datetime.datetime) -> bool:
    until = _limited_until.get(professional.pk)
    return until is not None and now < until


def _note_limited(professional: Professional, until: datetime.datetime | None) -> None:
    with _limited_lock:
        if until is None:
            _limited_until.pop(professional.pk, None)
            return
        if len(_limited_until) >= _LIMITED_MAX:
            now = timezone.now()
            for key in [key for key, value in _limited_until.items() if value <= now]:
                del _limited_until[key]
            if len(_limited_until) >= _LIMITED_MAX:
                _limited_until.clear()
        _limited_until[professional.pk] = until


def forget_search_limits() -> None:
    """Forgets the professionals this process saw at the search limit (tests: ids are reused)."""
    with _limited_lock:
        _limited_until.clear()


def _limit_ends(professional: Professional) -> datetime.datetime | None:
    """When the professional, at the limit, may search again: when the oldest of their last
    ``ESANTE_SEARCH_RATE_LIMIT`` searches in the window leaves it."""
    limit = settings.ESANTE_SEARCH_RATE_LIMIT
    oldest = (
        selectors.recent_searches(professional)
        .order_by("-created_at")
        .values_list("created_at", flat=True)[limit - 1 : limit]
    )
    found = list(oldest)
    return (
        found[0] + datetime.timedelta(seconds=settings.ESANTE_SEARCH_RATE_WINDOW_SECONDS) if found else None
    )


class _Limited(SearchRateLimited):
    def __init__(self, until: datetime.datetime | None) -> None:
        self.until = until
        super().__init__()


@transaction.atomic
def _search_counted(
    *,
    professional: Professional,
    criteria: PatientSearchCriteria,
    result: ListPage,
    client_address: str | None,
) -> datetime.datetime | None:
    # The professional's row is locked until the search is traced, so concurrent searches by
    # one professional queue here and each one counts those committed before it: the limit holds.
    Professional.objects.select_for_update().filter(pk=professional.pk).values_list("pk", flat=True).get()
    limit = settings.ESANTE_SEARCH_RATE_LIMIT
    searches = selectors.recent_searches(professional)[:limit].count()
    if searches >= limit:
        raise _Limited(_limit_ends(professional))
    # The search's one write: its audit event counts it for the rate limit and lists the patients
    # it showed, whose access dialog the professional may then open (``shown_by_recent_search``).
    audit_record(
        action=AuditAction.PATIENT_SEARCH,
        actor=professional.user,
        client_address=client_address,
        details={
            "criteria": criteria.as_audit_details(),
            "results": result.total,
            "refine": result.refine,
            "shown": [str(patient.public_id) for patient in result.rows],
        },
    )
    # This search reached the limit: the next ones are refused until the window moves on.
    return _limit_ends(professional) if searches + 1 >= limit else None


def patient_search(
    *,
    professional: Professional,
    criteria: PatientSearchCriteria,
    page: int,
    page_size: int,
    client_address: str | None = None,
    columns: bool = True,
) -> ListPage:
    """Runs a patient search within the rate limit, counts it and traces its criteria and results.

    Over ``ESANTE_SEARCH_RATE_LIMIT`` it raises ``SearchRateLimited`` after tracing the refusal.
    The search itself is a lag-tolerant read, outside any transaction (on the hot standby when
    one is in use, ``esante.core.replica``); then one transaction holding the professional's row
    counts the searches in the window, counts this one and traces it, so concurrent searches
    cannot all slip under the limit: of searches sent at once, those beyond it are refused (their
    results discarded) and traced as refused. Once this process saw the professional reach the
    limit, their next searches are refused before anything is searched or counted, until the
    window moves on.
    """
    try:
        if _limited_now(professional, timezone.now()):
            raise SearchRateLimited
        result = lag_tolerant(
            "patient_search",
            lambda: selectors.patient_search_page(
                professional=professional, criteria=criteria, page=page, page_size=page_size, columns=columns
            ),
        )
        until = _search_counted(
            professional=professional, criteria=criteria, result=result, client_address=client_address
        )
        if until is not None or professional.pk in _limited_until:
            _note_limited(professional, until)
        return result
    except SearchRateLimited as refusal:
        if isinstance(refusal, _Limited):
            _note_limited(professional, refusal.until)
        patient_search_refuse(
            professional=professional, criteria=criteria, reason="rate_limited", client_address=client_address
        )
        raise SearchRateLimited from None


def patient_search_refuse(
    *,
    professional: Professional,
    criteria: PatientSearchCriteria,
    reason: str,
    client_address: str | None = None,
) -> None:
    """Traces a search refused before it ran (rate limit)."""
    audit_record(
        action=AuditAction.PATIENT_SEARCH,
        outcome=AuditEvent.Outcome.REFUSED,
        actor=professional.user,
        client_address=client_address,
        details={"criteria": criteria.as_audit_details(), "reason": reason},
    )


@transaction.atomic
def patient_block_create(
    *, patient: Patient, professional: Professional, actor: Any, reason: str
) -> PatientBlock:
    """Records the patient's refusal of one professional (operator action, on the patient's request).

    Idempotent: an active block is returned as it is. The professional's grants stop working
    at once (the selectors check blocks on every read).
    """
    existing = PatientBlock.objects.filter(
        patient=patient, professional=professional, lifted_at__isnull=True
    ).first()
    if existing is not None:
        return existing
    block = PatientBlock.objects.create(patient=patient, professional=professional, reason=reason)
    audit_record(
        action=AuditAction.PATIENT_BLOCK,
        actor=actor,
        patient=patient,
        object_type="PatientBlock",
        object_id=block.pk,
        motif=reason,
        details={"professional": professional.matricule},
    )
    return block


@transaction.atomic
def patient_block_lift(*, block: PatientBlock, actor: Any) -> PatientBlock:
    """Lifts a block (the row stays, with the time it was lifted)."""
    block = PatientBlock.objects.select_for_update().select_related("professional").get(pk=block.pk)
    if block.lifted_at is None:
        block.lifted_at = timezone.now()
        block.save(update_fields=["lifted_at"])
        audit_record(
            action=AuditAction.PATIENT_UNBLOCK,
            actor=actor,
            patient=block.patient,
            object_type="PatientBlock",
            object_id=block.pk,
            details={"professional": block.professional.matricule},
        )
    return block
