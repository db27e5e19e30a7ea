"""The certified true copy ("copie certifiée conforme") as a PDF, rendered with WeasyPrint.

The copy carries the prescription, the filled dispensation grid (date, pharmacy, pharmacist,
prescribed / delivered / remaining per line), the certification statement and a QR code of the
public verification address. WeasyPrint may fetch nothing but ``data:`` URIs: no file, no network.
"""

import base64
import datetime
import io
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import qrcode
from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from esante.documents.models import Prescription

from .models import Dispensation, DispensationLine
from .selectors import LineState


@dataclass(frozen=True)
class GridRow:
    dispensation: Dispensation
    line: DispensationLine
    first_of_dispensation: bool
    span: int


def grouped(code: str) -> str:
    """The code as printed: groups of four, easier to read out and type."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def verification_url(code: str, public_url: str) -> str:
    return public_url.rstrip("/") + reverse("verification:verify", kwargs={"code": code})


def qr_data_uri(data: str) -> str:
    """The QR code as a PNG of one pixel per module: the copy prints it at 34 mm with
    ``image-rendering: pixelated`` (sharp modules, no smoothing), and a small image is cheap to
    embed."""
    image = qrcode.make(data, box_size=1, border=2)
    buffer = io.BytesIO()
    image.save(buffer)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def grid_rows(dispensations: Sequence[Dispensation]) -> list[GridRow]:
    rows = []
    for dispensation in dispensations:
        lines = list(dispensation.lines.all())
        for index, line in enumerate(lines):
            rows.append(GridRow(dispensation, line, index == 0, len(lines)))
    return rows


def render_certified_copy(
    *,
    prescription: Prescription,
    dispensations: Sequence[Dispensation],
    line_states: Sequence[LineState],
    code: str,
    issued_at: datetime.datetime,
    public_url: str,
) -> bytes:
    """The PDF bytes of the copy (about a second of WeasyPrint: call it outside any transaction).

    The copy is a legal document of the platform: French, whatever language the pharmacist's
    portal is in.
    """
    from weasyprint import HTML  # imported lazily: loading WeasyPrint costs about a second
    from weasyprint.urls import URLFetcher

    url = verification_url(code, public_url)
    latest = dispensations[-1]
    with translation.override(settings.LANGUAGE_CODE):
        html = render_to_string(
            "dispensing/copy_pdf.html",
            {
                "prescription": prescription,
                "document": prescription.document,
                "patient": prescription.document.patient,
                "lines": list(prescription.lines.all()),
                "line_states": line_states,
                "rows": grid_rows(dispensations),
                "latest": latest,
                "issued_at": timezone.localtime(issued_at),
                "code": grouped(code),
                "verification_url": url,
                "qr": qr_data_uri(url),
            },
        )
    pdf: bytes = HTML(string=html, url_fetcher=URLFetcher(allowed_protocols={"data"})).write_pdf(
        stylesheets=[_stylesheet()]
    )
    return pdf


_STYLESHEET = Path(__file__).parent / "templates" / "dispensing" / "copy_pdf.css"
_parsed = threading.local()


def _stylesheet() -> Any:
    """The copy's stylesheet, parsed once per thread (the job queue's workers may be threads;
    a parsed stylesheet is not shared between them)."""
    sheet = getattr(_parsed, "sheet", None)
    if sheet is None:
        from weasyprint import CSS

        sheet = _parsed.sheet = CSS(string=_STYLESHEET.read_text(encoding="utf-8"))
    return sheet
