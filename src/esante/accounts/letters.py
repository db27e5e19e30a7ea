"""PDF documents of the accounts app, rendered with WeasyPrint: the postal activation letter and
the terms of use (CGU)."""

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone

from esante.core.context_processors import HELPDESK_EMAIL, HELPDESK_PHONE

from .models import ActivationLetter


def _pdf(html: str) -> bytes:
    from weasyprint import HTML  # imported lazily: loading WeasyPrint costs about a second

    pdf: bytes = HTML(string=html, base_url=str(settings.PACKAGE_DIR)).write_pdf()
    return pdf


def activation_letter_pdf(*, letter: ActivationLetter, code: str) -> bytes:
    """The letter mailed to the professional: letterhead, name, matricule, code, the steps."""
    html = render_to_string(
        "accounts/letter.html",
        {
            "professional": letter.professional,
            "code": code,
            "issued": timezone.localtime(letter.issued_at),
            "expires": timezone.localtime(letter.expires_at),
            "helpdesk_phone": HELPDESK_PHONE,
            "helpdesk_email": HELPDESK_EMAIL,
        },
    )
    return _pdf(html)


def terms_pdf() -> bytes:
    html = render_to_string("accounts/terms_pdf.html", {"terms_version": settings.ESANTE_TERMS_VERSION})
    return _pdf(html)
