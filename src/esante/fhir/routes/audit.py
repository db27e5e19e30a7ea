"""AuditEvent: a professional reads the trail of their own actions (IHE BALP shape)."""

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from ninja import Router

from esante.audit.catalogue import AuditAction
from esante.audit.selectors import events_of_actor
from esante.audit.services import audit_record, audit_via
from esante.core.http import client_address
from esante.espace.selectors import JournalFilters, actors_words, journal_events, journal_line
from esante.espace.services import patient_trace

from .. import audit_event, patient
from ..auth import ApiCaller, caller
from ..bundle import searchset
from ..capability import base_url
from ..outcome import fhir_response

router = Router()


@router.get("/AuditEvent")
def audit_event_search(request: HttpRequest) -> HttpResponse:
    """The events of the token's professional's own actions, newest first; the reading is traced."""
    who = caller(request, resource_type="AuditEvent", permission="s", patient_allowed=True)
    params = request.GET
    if who.patient_account is not None:
        return _patient_journal(request, who, params)
    with audit_via(who.audit_details):
        count, page = patient.page_parameters(
            params, default=settings.ESANTE_FHIR_PAGE_SIZE, maximum=settings.ESANTE_FHIR_MAX_PAGE_SIZE
        )
        assert who.professional is not None  # noqa: S101
        user = who.professional.user
        events = audit_event.search(events_of_actor(user), params)
        total = events.count()
        offset = (page - 1) * count
        rows = list(events[offset : offset + count]) if offset < total else []
        audit_record(
            action=AuditAction.AUDIT_READ,
            actor=user,
            client_address=client_address(request),
            details={"results": total, "page": page},
        )
        link_params = [
            (k, v) for k in params if k not in ("_count", "_page", "_format") for v in params.getlist(k)
        ]
        return fhir_response(
            searchset(
                base=base_url(request),
                resource_type="AuditEvent",
                resources=[audit_event.to_resource(row) for row in rows],
                total=total,
                link_params=link_params,
                page=page,
                count=count,
            )
        )


def _patient_journal(request: HttpRequest, who: ApiCaller, params: Any) -> HttpResponse:
    """A patient's token: the events of their own journal (every event naming them), newest first,
    in the journal's words, without the actors' addresses; the reading is in the journal."""
    account = who.patient_account
    with audit_via(who.audit_details):
        count, page = patient.page_parameters(
            params, default=settings.ESANTE_FHIR_PAGE_SIZE, maximum=settings.ESANTE_FHIR_MAX_PAGE_SIZE
        )
        events = audit_event.search(
            journal_events(account.patient, JournalFilters()).select_related("patient"),
            params,
        )
        total = events.count()
        offset = (page - 1) * count
        rows = list(events[offset : offset + count]) if offset < total else []
        patient_trace(
            account,
            AuditAction.ESPACE_JOURNAL_READ,
            client_address=client_address(request),
            results=total,
            page=page,
        )
        actors = actors_words(rows, account.user_id)
        resources = [
            audit_event.to_resource(
                row,
                who=journal_line(row, account_user_id=account.user_id, titles={}, actors=actors).who,
                network=False,
            )
            for row in rows
        ]
        link_params = [
            (k, v) for k in params if k not in ("_count", "_page", "_format") for v in params.getlist(k)
        ]
        return fhir_response(
            searchset(
                base=base_url(request),
                resource_type="AuditEvent",
                resources=resources,
                total=total,
                link_params=link_params,
                page=page,
                count=count,
            )
        )
