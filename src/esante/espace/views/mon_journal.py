"""« Mon journal d'accès »: the journal's pages and its exports."""

from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from esante.accounts.models import Professional
from esante.audit.catalogue import AuditAction
from esante.core.http import client_address

from .. import exports, selectors, services
from ..forms import JournalFilterForm
from ..http import patient_required
from ..models import PatientAccount

# --- « Mon journal d'accès » ------------------------------------------------------------------


def _journal_filters(
    request: HttpRequest, account: PatientAccount
) -> tuple[JournalFilterForm, Any, list[Professional]]:
    professionals = selectors.journal_professionals(account.patient)
    form = JournalFilterForm(request.GET or None, professionals=professionals)
    return form, form.filters() if request.GET else selectors.JournalFilters(), professionals


@never_cache
@require_GET
@patient_required
def journal(request: HttpRequest, account: PatientAccount) -> HttpResponse:
    form, filters, professionals = _journal_filters(request, account)
    before_raw = request.GET.get("avant", "")
    before = int(before_raw) if before_raw.isdigit() else None
    page = selectors.journal_page(
        account.patient,
        account_user_id=account.user_id,
        filters=filters,
        before=before,
        professionals=professionals,
    )
    services.patient_trace(
        account,
        AuditAction.ESPACE_JOURNAL_READ,
        client_address=client_address(request),
        filters=filters.as_query(),
        before=before,
    )
    return render(
        request,
        "espace/journal.html",
        {"tab": "journal", "account": account, "form": form, "page": page, "query": filters.as_query()},
    )


@never_cache
@require_GET
@patient_required
def journal_export(
    request: HttpRequest, account: PatientAccount, fmt: str
) -> HttpResponse | StreamingHttpResponse:
    _, filters, _ = _journal_filters(request, account)
    response: HttpResponse | StreamingHttpResponse
    services.patient_trace(
        account,
        AuditAction.JOURNAL_EXPORT,
        client_address=client_address(request),
        format=fmt,
        filters=filters.as_query(),
    )
    if fmt == "pdf":
        pdf = exports.journal_pdf(account.patient, account_user_id=account.user_id, filters=filters)
        response = HttpResponse(pdf, content_type="application/pdf")
        response["Content-Disposition"] = 'attachment; filename="journal-acces.pdf"'
    else:
        response = StreamingHttpResponse(
            exports.journal_csv(account.patient, account_user_id=account.user_id, filters=filters),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = 'attachment; filename="journal-acces.csv"'
    response["Cache-Control"] = "no-store"
    return response
