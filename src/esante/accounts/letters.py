"""PDF documents of the accounts app, rendered with WeasyPrint: the postal activation letter and
the terms of use (CGU)."""

import functools

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone

from esante.core.context_processors import HELPDESK_EMAIL, HELPDESK_PHONE

from .models import ActivationLetter


def _pdf(html: str) -> bytes:
    from weasyprint import HTML  # imported lazily: loading WeasyPrint costs about a second
    from weasyprint.urls import URLFetcher

    # Self-contained documents: nothing is fetched but data: URIs (no file, no network).
    pdf: bytes = HTML(string=html, url_fetcher=URLFetcher(allowed_protocols={"data"})).write_pdf()
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


@functools.cache
def _terms_pdf(version: str) -> bytes:
    return _pdf(render_to_string("accounts/terms_pdf.html", {"terms_version": version}))


def terms_pdf() -> bytes:
    """The CGU as PDF, rendered once per version and process (the page is public: no rendering
    per anonymous request)."""
    return _terms_pdf(settings.ESANTE_TERMS_VERSION)
