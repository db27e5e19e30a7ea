"""Patient (IHE PDQm ITI-78) and the ``$declare-access`` operation."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, QueryDict
from ninja import Router

from esante.access import services as access_services
from esante.audit.services import audit_via

from .. import declare_access, patient
from ..auth import caller
from ..bundle import searchset
from ..capability import base_url
from ..outcome import fhir_response, rate_limited
from .common import found_by_search, read_json, record_gate, remember_found, search_body

router = Router()


def _patient_search(request: HttpRequest, read_params: Callable[[], QueryDict]) -> HttpResponse:
    who = caller(request, resource_type="Patient", permission="s")
    params = read_params()  # only once the caller is known: a stranger's body is never read
    with audit_via(who.audit_details):
        criteria = patient.search_criteria(params)
        count, page = patient.page_parameters(
            params, default=settings.ESANTE_FHIR_PAGE_SIZE, maximum=settings.ESANTE_FHIR_MAX_PAGE_SIZE
        )
        try:
            # Identities only: none of the portal lists' per-professional columns.
            result = record_gate(request, who).search(
                criteria=criteria, page=page, page_size=count, columns=False
            )
        except access_services.SearchRateLimited:
            raise rate_limited(
                "Trop de recherches de patients en peu de temps : patientez avant de recommencer.",
                settings.ESANTE_SEARCH_RATE_WINDOW_SECONDS,
            ) from None
        rows = result.rows if result.page == page else []
        remember_found(who.token, [str(row.public_id) for row in rows])
        base = base_url(request)
        # Never a matricule in a link (links land in access logs): an identifier search finds
        # one patient at most, so it has no next page to link to.
        safe = [
            (k, v)
            for k in params
            if k not in ("identifier", "_count", "_page", "_format")
            for v in params.getlist(k)
        ]
        bundle = searchset(
            base=base,
            resource_type="Patient",
            resources=[patient.to_resource(row, base) for row in rows],
            total=result.total,
            link_params=safe,
            page=page,
            count=count,
        )
        return fhir_response(bundle)


@router.get("/Patient")
def patient_search_get(request: HttpRequest) -> HttpResponse:
    """ITI-78 by GET (software should prefer POST ``_search``: no matricule in a URL)."""
    return _patient_search(request, lambda: request.GET)


@router.post("/Patient/_search")
def patient_search_post(request: HttpRequest) -> HttpResponse:
    """ITI-78 by POST (form-encoded parameters in the body)."""
    return _patient_search(request, lambda: search_body(request))


@router.get("/Patient/{patient_id}")
def patient_read(request: HttpRequest, patient_id: str) -> HttpResponse:
    """The patient's identity, under a current grant; 404 otherwise (same as missing)."""
    who = caller(request, resource_type="Patient", permission="r")
    with audit_via(who.audit_details):
        access = record_gate(request, who).read_patient(patient_id)
        return fhir_response(patient.to_resource(access.patient, base_url(request)))


@router.post("/Patient/{patient_id}/$declare-access")
def patient_declare_access(request: HttpRequest, patient_id: str) -> HttpResponse:
    """Opens an access to the record, as the portal's dialog does, with its rules and audit."""
    who = caller(request, resource_type="Patient", permission="r")
    with audit_via(who.audit_details):
        declaration = declare_access.from_parameters(read_json(request))
        gate = record_gate(request, who)
        state = gate.dialog(patient_id, found_by_search=found_by_search(who.token, patient_id))
        grant = gate.grant(
            mode=declaration.mode,
            patient=state.patient,
            motif=declaration.motif,
            conditions_accepted=declaration.conditions_accepted,
        )
        return fhir_response(declare_access.to_parameters(grant))
