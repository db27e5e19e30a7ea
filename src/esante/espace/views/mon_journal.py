"""« Mon journal d'accès »: the journal's pages and its exports."""

import datetime
import re

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from esante.accounts.models import Professional
from esante.audit.catalogue import AuditAction
from esante.core.http import client_address
from esante.core.replica import lag_tolerant
from esante.tlog.selectors import inclusion_for_event, leaf_opening

from .. import exports, selectors, services
from ..forms import JournalFilterForm
from ..http import not_found_page, patient_required
from ..models import PatientAccount

# --- « Mon journal d'accès » ------------------------------------------------------------------


#: The journal's filters, as named in its URLs.
FILTER_NAMES = ("du", "au", "type", "professionnel")


def _journal_filters(
    request: HttpRequest, account: PatientAccount
) -> tuple[JournalFilterForm | None, selectors.JournalFilters, list[Professional]]:
    """The filters asked for (parsed by the form only when there are some: an unfiltered page,
    the common case, builds no form)."""
    professionals = selectors.journal_professionals(account.patient)
    if not any(request.GET.get(name) for name in FILTER_NAMES):
        return None, selectors.JournalFilters(), professionals
    plain = _plain_filters(request, professionals)
    if plain is not None:
        return None, plain, professionals
    form = JournalFilterForm(request.GET, professionals=professionals)
    return form, form.filters(), professionals


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _plain_filters(
    request: HttpRequest, professionals: list[Professional]
) -> selectors.JournalFilters | None:
    """The filters when each is one the form accepts as it is (the dates as the date fields
    send them, a kind, a professional of the list), without building the form; None for anything
    else, which the form then parses (and, when it refuses it, says why)."""
    dates = []
    for name in ("du", "au"):
        value = request.GET.get(name, "")
        if value and not _ISO_DATE.fullmatch(value):
            return None
        try:
            dates.append(datetime.date.fromisoformat(value) if value else None)
        except ValueError:
            return None
    kind = request.GET.get("type", "")
    professional = request.GET.get("professionnel", "")
    if kind and kind not in selectors.JOURNAL_KINDS:
        return None
    if professional and not any(p.matricule == professional for p in professionals):
        return None
    return selectors.JournalFilters(since=dates[0], until=dates[1], kind=kind, professional=professional)


@never_cache
@require_GET
@patient_required
def journal(request: HttpRequest, account: PatientAccount) -> HttpResponse:
    before_raw = request.GET.get("avant", "")
    before = int(before_raw) if before_raw.isdigit() else None

    def read() -> tuple[JournalFilterForm | None, selectors.JournalFilters, selectors.JournalPage]:
        form, filters, professionals = _journal_filters(request, account)
        page = selectors.journal_page(
            account.patient,
            account_user_id=account.user_id,
            filters=filters,
            before=before,
            professionals=professionals,
        )
        return form, filters, page

    # A page of the journal may come from the hot standby (``esante.core.replica``): at most
    # ESANTE_REPLICA_MAX_LAG_SECONDS behind, and never behind the patient's own choices just made.
    form, filters, page = lag_tolerant("patient_journal", read)
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
        {
            "tab": "journal",
            "account": account,
            "form": form,
            "asked": {name: request.GET.get(name, "") for name in FILTER_NAMES},
            "page": page,
            "query": filters.as_query(),
        },
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


@never_cache
@require_GET
@patient_required
def journal_entry(request: HttpRequest, account: PatientAccount, sequence: int) -> HttpResponse:
    """One line of the journal and what lets anybody check it against the public log: its place
    in the log, its salt (which only this journal reveals) and the event's exact text."""
    event = selectors.own_event(account.patient, sequence)
    if event is None:
        services.patient_not_found(
            account, what="audit_event", object_id=str(sequence), client_address=client_address(request)
        )
        return not_found_page(request)
    services.patient_trace(
        account,
        AuditAction.ESPACE_JOURNAL_READ,
        client_address=client_address(request),
        object_type="audit_event",
        object_id=str(sequence),
    )
    opening = leaf_opening(event.pk)
    logged = inclusion_for_event(event.pk)
    line = selectors.journal_line(event, account_user_id=account.user_id, titles={})
    public = request.build_absolute_uri(reverse("tlog:checkpoint")).rsplit("/", 1)[0]
    context = {
        "tab": "journal",
        "account": account,
        "line": line,
        "event": event,
        "opening": opening,
        "logged": logged,
        "public_url": public,
        "key_url": request.build_absolute_uri(reverse("tlog:key")),
    }
    return render(request, "espace/journal_entry.html", context)


@never_cache
@require_GET
@patient_required
def journal_entry_text(request: HttpRequest, account: PatientAccount, sequence: int) -> HttpResponse:
    """The event's canonical text, byte for byte as it was hashed (for the standalone verifier)."""
    event = selectors.own_event(account.patient, sequence)
    if event is None:
        services.patient_not_found(
            account, what="audit_event", object_id=str(sequence), client_address=client_address(request)
        )
        return not_found_page(request)
    # Found by its sequence: a chained event, its canonical text set.
    response = HttpResponse(
        (event.canonical or "").encode("utf-8"), content_type="application/json; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="evenement-{sequence}.json"'
    response["Cache-Control"] = "no-store"
    return response
