"""The patient's postal activation letter, as PDF (WeasyPrint)."""

from django.template.loader import render_to_string
from django.utils import timezone

from esante.core.context_processors import HELPDESK_EMAIL, HELPDESK_PHONE

from .models import PatientLetter


def patient_letter_pdf(*, letter: PatientLetter, code: str) -> bytes:
    from weasyprint import HTML  # imported lazily: loading WeasyPrint costs about a second
    from weasyprint.urls import URLFetcher

    html = render_to_string(
        "espace/letter.html",
        {
            "patient": letter.account.patient,
            "code": code,
            "issued": timezone.localtime(letter.issued_at),
            "expires": timezone.localtime(letter.expires_at),
            "helpdesk_phone": HELPDESK_PHONE,
            "helpdesk_email": HELPDESK_EMAIL,
        },
    )
    pdf: bytes = HTML(string=html, url_fetcher=URLFetcher(allowed_protocols={"data"})).write_pdf()
    return pdf
