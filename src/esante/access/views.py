"""eDocuments portal views (guide pp.12-13): lists, search, access dialog, record page. HTTP only."""

import uuid
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from esante.accounts.models import Professional
from esante.patients.models import Patient

from . import policy, selectors, services
from .forms import AccessRequestForm, PatientSearchForm
from .gate import RecordGate, RecordNotFound
from .http import not_found_page, professional_required
from .models import AccessGrant

RATE_LIMITED_MESSAGE = _(
    "Vous avez effectué trop de recherches en peu de temps. Patientez quelques minutes avant de recommencer."
)
REFINE_MESSAGE = _("Plus de %(cap)s patients correspondent à ces critères : affinez votre recherche.")


# The access dialog is reached by clicking a patient in the search results (or in "Mes patients"
# / "Mes derniers dossiers"). Shown for any patient id, it would tell that the id exists (200)
# where a random one gets 404: an oracle for the patient index. So it opens only for a patient
# the professional was shown by a search a moment ago, or on whose record they hold or recently
# held a grant (``selectors.access_dialog_state``); otherwise it is the same 404 as a missing id.
# A search's audit event lists the patients it showed (``selectors.shown_by_recent_search``), for
# as long as the search rate window; opening the dialog restarts that window for its patient in the
# session (public id -> when shown, at most ``_FOUND_MAX`` of them): no per-result row is written.
_FOUND_SESSION_KEY = "access_found_by_search"
_FOUND_MAX = 500


def _found_window() -> int:
    return int(settings.ESANTE_SEARCH_RATE_WINDOW_SECONDS)


def _remember_found(request: HttpRequest, patients: Iterable[Patient]) -> None:
    now = int(timezone.now().timestamp())
    found: dict[str, int] = {
        key: shown
        for key, shown in request.session.get(_FOUND_SESSION_KEY, {}).items()
        if now - shown < _found_window()
    }
    found.update((str(patient.public_id), now) for patient in patients)
    newest = sorted(found.items(), key=lambda item: item[1], reverse=True)[:_FOUND_MAX]
    request.session[_FOUND_SESSION_KEY] = dict(newest)


def _found_by_search(request: HttpRequest, professional: Professional, public_id: uuid.UUID) -> bool:
    shown = request.session.get(_FOUND_SESSION_KEY, {}).get(str(public_id))
    if shown is not None and timezone.now().timestamp() - shown < _found_window():
        return True
    return selectors.shown_by_recent_search(professional, public_id)


def _list_context(request: HttpRequest, tab: str, queryset: Any) -> dict[str, Any]:
    page = selectors.paginate(
        queryset,
        page=selectors.page_number_of(request.GET.get("page", 1)),
        page_size=selectors.page_size_of(request.GET.get("page_size", selectors.DEFAULT_PAGE_SIZE)),
    )
    return {"tab": tab, "page": page, "page_sizes": selectors.PAGE_SIZES}


@never_cache
@require_GET
@professional_required
def my_patients(request: HttpRequest, professional: Professional) -> HttpResponse:
    """Tab "Mes patients": patients for whom the professional holds a current access."""
    context = _list_context(request, "patients", selectors.my_patients(professional))
    return render(request, "access/patient_list.html", context)


@never_cache
@require_GET
@professional_required
def recent_records(request: HttpRequest, professional: Professional) -> HttpResponse:
    """Tab "Mes derniers dossiers": records the professional opened recently."""
    context = _list_context(request, "recent", selectors.recent_records(professional))
    return render(request, "access/patient_list.html", context)


@never_cache
@require_http_methods(["GET", "POST"])
@professional_required
def search(request: HttpRequest, professional: Professional) -> HttpResponse:
    """Tab "Recherche patient". Submitted by POST, so no criterion ever reaches a URL or a log."""
    context: dict[str, Any] = {"tab": "search", "page_sizes": selectors.PAGE_SIZES}
    if request.method != "POST":
        context["form"] = PatientSearchForm()
        return render(request, "access/search.html", context)
    form = PatientSearchForm(request.POST)
    context["form"] = form
    status = 200
    if form.is_valid():
        criteria = form.cleaned_data["criteria"]
        try:
            page = RecordGate.for_portal(request, professional).search(
                criteria=criteria, page=form.cleaned_data["page"], page_size=form.cleaned_data["page_size"]
            )
        except services.SearchRateLimited:
            context["error"] = RATE_LIMITED_MESSAGE
            status = 429
        else:
            context["page"] = page
            if page.refine:
                context["refine_message"] = REFINE_MESSAGE % {"cap": page.total}
    template = "access/_search_results.html" if getattr(request, "htmx", False) else "access/search.html"
    return render(request, template, context, status=status)


@never_cache
@require_GET
def access_rules(request: HttpRequest) -> HttpResponse:
    """ "En savoir plus": the rules of access to a patient's record."""
    return render(
        request,
        "access/access_rules.html",
        {
            "pharmacist_hours": int(policy.access_duration("pharmacist").total_seconds() // 3600),
            "doctor_days": policy.access_duration("doctor").days,
            "emergency_hours": int(policy.emergency_duration().total_seconds() // 3600),
        },
    )


@never_cache
@require_http_methods(["GET", "POST"])
@professional_required
def access_dialog(request: HttpRequest, professional: Professional, public_id: uuid.UUID) -> HttpResponse:
    """ "Accès au dossier du patient": the conditions, the motif, and the ways in."""
    found_by_search = _found_by_search(request, professional, public_id)
    gate = RecordGate.for_portal(request, professional)
    try:
        state = gate.dialog(public_id, found_by_search=found_by_search)
    except RecordNotFound:
        return not_found_page(request)
    if found_by_search:
        # Reading the conditions and choosing a motif takes its time: the window restarts here.
        _remember_found(request, [state.patient])
    record_url = reverse("documents:record", args=[state.patient.public_id])
    # A care or emergency access already opens the whole record; an own-documents one does not,
    # so the dialog stays open to ask for a care access.
    own_documents_only = state.grant is not None and state.grant.mode == AccessGrant.Mode.OWN_DOCUMENTS
    if state.grant is not None and not own_documents_only and request.method == "GET":
        return redirect(record_url)
    allow_emergency = policy.may_use_emergency_access(professional.profession)
    form = AccessRequestForm(request.POST or None, allow_emergency=allow_emergency)
    status = 200
    refusal_message = services.AccessRefused.MESSAGES[state.refusal] if state.refusal else ""
    if request.method == "POST" and form.is_valid():
        try:
            gate.grant(
                mode=form.cleaned_data["mode"],
                patient=state.patient,
                motif=form.motif(),
                conditions_accepted=form.cleaned_data["accept_conditions"],
            )
        except services.AccessRefused as refusal:
            forbidden = {"record_closed", "record_opposed", "blocked", "emergency_not_allowed"}
            status = 403 if refusal.code in forbidden else 400
            field = {
                "motif_missing": "motif_choice",
                "motif_too_short": "motif_text",
                "motif_too_long": "motif_text",
                "conditions_not_accepted": "accept_conditions",
            }.get(refusal.code)
            if field:
                form.add_error(field, refusal.message)
            else:
                refusal_message = refusal.message
        else:
            return redirect(record_url)
    elif request.method == "POST":
        status = 400
    context = {
        "form": form,
        "public_id": state.patient.public_id,
        "refusal_message": refusal_message,
        "closed": bool(state.refusal),
        "allow_emergency": allow_emergency,
        "own_documents_only": own_documents_only,
        "emergency_min_length": policy.EMERGENCY_MOTIF_MIN_LENGTH,
    }
    return render(request, "access/access_dialog.html", context, status=status)
