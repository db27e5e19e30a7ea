"""The per-request access gate: the one boundary every channel goes through.

A channel (the portal today; the FHIR API and the patient portal next) builds one gate per
request from who acts, the channel and the client address, and asks it for what it needs. The
gate decides only through ``esante.access.policy`` (via the access selectors, which apply the
policy in the database), writes the audit event of each success itself, and traces each refusal
in a transaction of its own before raising the one error a channel maps to its "not found"
answer: ``RecordNotFound`` (a 404 page; later an ``OperationOutcome``). Missing and forbidden
raise the same error and trace the same kind of event, so the caller cannot tell them apart.

``RecordGate`` covers the record: patient search, the access dialog and its grants, the opening
of a record. The apps above extend it with their resources — ``esante.documents.gate`` (list and
read documents) and ``esante.dispensing.gate`` (authorise a dispensation) — so that this app
imports none of them.
"""

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

from django.http import HttpRequest

from esante.accounts.models import Professional
from esante.audit.catalogue import AuditAction, AuditOutcome
from esante.audit.services import audit_record
from esante.patients.models import Patient
from esante.patients.selectors import PatientSearchCriteria

from . import policy, services
from .http import client_address
from .models import AccessGrant, RecordOpening
from .selectors import (
    AccessDialogState,
    ListPage,
    RecordNotFound,
    access_dialog_state,
    access_patient_record,
)

__all__ = ["Channel", "RecordAccess", "RecordGate", "RecordNotFound"]


class Channel(enum.StrEnum):
    """Where a request comes from: the professionals' portal, the API, the operators' admin."""

    PORTAL = "portal"
    API = "api"
    OPERATOR = "operator"


@dataclass(frozen=True)
class RecordAccess:
    """A record the actor may read now: the patient, the grant it is read under, and when the
    actor opened it before (for "Nouveaux documents depuis la dernière visite")."""

    patient: Patient
    grant: AccessGrant
    previous_visit: Any = None


class RecordGate:
    """What one actor may see or do on patients' records, for one request.

    ``actor`` is the acting professional (a patient, a representative and a software client
    acting for a professional come next); ``client_address`` goes into every event the gate
    writes; ``channel`` says which edge asks (the portal today), for the rules and answers that
    will differ by channel.
    """

    def __init__(
        self, *, actor: Professional, channel: Channel = Channel.PORTAL, client_address: str | None = None
    ) -> None:
        self.actor = actor
        self.channel = channel
        self.client_address = client_address

    @classmethod
    def for_portal(cls, request: HttpRequest, professional: Professional) -> Self:
        """The gate of one portal request by an active professional."""
        return cls(actor=professional, channel=Channel.PORTAL, client_address=client_address(request))

    @classmethod
    def for_api(cls, request: HttpRequest, professional: Professional) -> Self:
        """The gate of one API request by software acting for ``professional`` (the software
        client is named in every event by the API, through ``audit.services.audit_via``)."""
        return cls(actor=professional, channel=Channel.API, client_address=client_address(request))

    def may_dispense(self, grant: AccessGrant | None) -> bool:
        """Whether the actor may mark prescriptions dispensed under ``grant`` (the policy's rule)."""
        return grant is not None and policy.may_dispense_under(
            profession=self.actor.profession, mode=grant.mode
        )

    # -- refusals -------------------------------------------------------------------------------
    def refuse(
        self,
        action: AuditAction,
        *,
        reason: str,
        patient: Patient | None,
        object_id: str = "",
        object_type: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        """Traces a refusal in a transaction of its own (the refused action wrote nothing)."""
        self.trace(
            action,
            outcome=AuditOutcome.REFUSED,
            patient=patient,
            object_type=object_type,
            object_id=object_id[:64],
            details={**(details or {}), "reason": reason},
        )

    def trace(
        self,
        action: AuditAction,
        *,
        patient: Patient | None,
        details: dict[str, Any],
        outcome: AuditOutcome = AuditOutcome.SUCCESS,
        object_type: str = "",
        object_id: str = "",
    ) -> None:
        """The one way the gate writes an event: the actor, the client address and the channel
        (``details["channel"]``) of this request."""
        audit_record(
            action=action,
            outcome=outcome,
            actor=self.actor.user,
            patient=patient,
            object_type=object_type,
            object_id=object_id,
            client_address=self.client_address,
            details={**details, "channel": self.channel.value},
        )

    def not_found(self, action: AuditAction, error: RecordNotFound, object_id: object) -> RecordNotFound:
        """Traces a read refused as "not found" (missing or forbidden) and returns the error to raise."""
        self.refuse(action, reason=error.reason, patient=error.patient, object_id=str(object_id))
        return error

    def guarded(self, action: AuditAction, object_id: object, read: Callable[[], Any]) -> Any:
        """Runs ``read``; when it finds nothing the actor may see, traces the refusal and re-raises."""
        try:
            return read()
        except RecordNotFound as error:
            raise self.not_found(action, error, object_id) from None

    # -- patient search --------------------------------------------------------------------------
    def search(
        self, *, criteria: PatientSearchCriteria, page: int, page_size: int, columns: bool = True
    ) -> ListPage:
        """One page of a patient search, within the actor's rate limit; traced (criteria, count).
        Without ``columns``, the rows lack the lists' per-professional columns (the API shows
        identities only).

        Raises ``services.SearchRateLimited`` (traced as refused) over the limit.
        """
        return services.patient_search(
            professional=self.actor,
            criteria=criteria,
            page=page,
            page_size=page_size,
            client_address=self.client_address,
            columns=columns,
        )

    # -- the access dialog -----------------------------------------------------------------------
    def dialog(self, public_id: object, *, found_by_search: bool) -> AccessDialogState:
        """The access dialog's view of a patient the actor reached (``found_by_search``: shown by a
        search a moment ago, the channel knows). ``RecordNotFound`` (traced as ``access.dialog``)
        for an unknown patient and, alike, for one the actor did not reach."""
        return self.guarded(
            AuditAction.ACCESS_DIALOG,
            public_id,
            lambda: access_dialog_state(self.actor, public_id, found_by_search=found_by_search),
        )

    def grant(self, *, mode: str, patient: Patient, motif: str, conditions_accepted: bool) -> AccessGrant:
        """Opens an access of ``mode`` (care, own documents, emergency) under the policy's rules.

        Raises ``services.AccessRefused`` (traced) when the policy refuses it.
        """
        grant_services: dict[str, Callable[..., AccessGrant]] = {
            AccessGrant.Mode.CARE: services.access_grant_care,
            AccessGrant.Mode.OWN_DOCUMENTS: services.access_grant_own_documents,
            AccessGrant.Mode.EMERGENCY: services.access_grant_emergency,
        }
        return grant_services[mode](
            professional=self.actor,
            patient=patient,
            motif=motif,
            conditions_accepted=conditions_accepted,
            client_address=self.client_address,
        )

    # -- the record ------------------------------------------------------------------------------
    def record(self, public_id: object, *, action: AuditAction = AuditAction.RECORD_OPEN) -> RecordAccess:
        """The record, authorised: the patient and the current grant. ``RecordNotFound`` (traced
        under ``action``) when it is missing or the actor may not see it. Writes nothing else."""
        patient, grant = self.guarded(action, public_id, lambda: access_patient_record(self.actor, public_id))
        return RecordAccess(patient=patient, grant=grant)

    def read_patient(self, public_id: object) -> RecordAccess:
        """The patient's identity, read under a current grant (the API's ``Patient`` read), traced
        as ``patient.read``. ``RecordNotFound`` (traced) when missing or forbidden."""
        access = self.record(public_id, action=AuditAction.PATIENT_READ)
        self.trace(
            AuditAction.PATIENT_READ,
            patient=access.patient,
            object_type="AccessGrant",
            object_id=str(access.grant.pk),
            details={"mode": access.grant.mode},
        )
        return access

    def open_record(self, public_id: object, *, reread: bool = False) -> RecordAccess:
        """Opens the record (``record.open``) — or, with ``reread``, re-reads an open record (a
        filter or tab change), which is no new opening. ``previous_visit`` is the opening before
        this one. ``RecordNotFound`` (traced) when missing or forbidden."""
        access = self.record(public_id)
        openings = list(
            RecordOpening.objects.filter(professional=self.actor, patient=access.patient)
            .order_by("-opened_at")
            .values_list("opened_at", flat=True)[:2]
        )
        if reread:
            return RecordAccess(access.patient, access.grant, openings[1] if len(openings) > 1 else None)
        services.record_open(
            professional=self.actor,
            patient=access.patient,
            grant=access.grant,
            client_address=self.client_address,
        )
        return RecordAccess(access.patient, access.grant, openings[0] if openings else None)

    def record_viewed(self, access: RecordAccess, *, view: str, filters: dict[str, str]) -> None:
        """Traces a re-read of an open record (a filter or tab change without reloading)."""
        self.trace(
            AuditAction.RECORD_VIEW, patient=access.patient, details={"view": view, "filters": filters}
        )

    def record_searched(self, access: RecordAccess, *, words: str, results: int) -> None:
        """Traces a keyword search in the record ("Rechercher un document")."""
        self.trace(
            AuditAction.RECORD_SEARCH,
            patient=access.patient,
            details={"words": words[:200], "results": results},
        )
