"""The patient's journal as CSV (streamed, every line) and as PDF (WeasyPrint)."""

import csv
from collections.abc import Iterator
from typing import Any

from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext

from esante.patients.models import Patient

from .selectors import JournalFilters, journal_events, journal_line

#: A PDF is for reading or printing: beyond this many lines, the CSV holds the whole journal.
PDF_MAX_LINES = 2000


class _Echo:
    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> str:
    """No spreadsheet formula from the trail's text (CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def journal_csv(patient: Patient, *, account_user_id: int, filters: JournalFilters) -> Iterator[str]:
    writer = csv.writer(_Echo(), delimiter=";")
    yield writer.writerow(
        [
            gettext("N°"),
            gettext("Date"),
            gettext("Qui"),
            gettext("Profession, organisation"),
            gettext("Logiciel"),
            gettext("Action"),
            gettext("Résultat"),
            gettext("Motif"),
            gettext("Urgence"),
            gettext("Document"),
        ]
    )
    events = journal_events(patient, filters).select_related(
        "actor__professional", "actor__patient_account__patient"
    )
    actors: dict[object, tuple[str, str]] = {}
    for event in events.iterator(chunk_size=2000):
        line = journal_line(event, account_user_id=account_user_id, titles={}, actors=actors)
        yield writer.writerow(
            [
                _cell(event.sequence),
                _cell(timezone.localtime(event.created_at).strftime("%d/%m/%Y %H:%M:%S")),
                _cell(line.who),
                _cell(line.who_detail),
                _cell(line.software),
                _cell(line.what),
                _cell(line.outcome),
                _cell(line.motif),
                gettext("oui") if line.emergency else "",
                _cell(event.object_id if event.object_type == "document" else ""),
            ]
        )


def journal_pdf(patient: Patient, *, account_user_id: int, filters: JournalFilters) -> bytes:
    from weasyprint import HTML  # imported lazily: loading WeasyPrint costs about a second
    from weasyprint.urls import URLFetcher

    events = list(
        journal_events(patient, filters).select_related(
            "actor__professional", "actor__patient_account__patient"
        )[: PDF_MAX_LINES + 1]
    )
    truncated = len(events) > PDF_MAX_LINES
    lines = [journal_line(e, account_user_id=account_user_id, titles={}) for e in events[:PDF_MAX_LINES]]
    html = render_to_string(
        "espace/journal_pdf.html",
        {
            "patient": patient,
            "lines": lines,
            "truncated": truncated,
            "max_lines": PDF_MAX_LINES,
            "printed": timezone.localtime(),
        },
    )
    pdf: bytes = HTML(string=html, url_fetcher=URLFetcher(allowed_protocols={"data"})).write_pdf()
    return pdf
