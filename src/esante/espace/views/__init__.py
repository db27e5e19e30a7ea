"""The patients' portal (« Espace patient »): one module per part of the portal."""

from .mes_choix import acting_for, block, choices, notifications, opposition, unblock
from .mon_dossier import certified_copy, document, document_content, document_visibility, record
from .mon_journal import journal, journal_entry, journal_entry_text, journal_export
from .signin import (
    activation,
    activation_by_certificate,
    activation_code,
    activation_security,
    certificate_bind,
    certificate_return,
    home,
    login,
    login_certificate,
    login_code,
    logout,
)

__all__ = [
    "acting_for",
    "activation",
    "activation_by_certificate",
    "activation_code",
    "activation_security",
    "block",
    "certificate_bind",
    "certificate_return",
    "certified_copy",
    "choices",
    "document",
    "document_content",
    "document_visibility",
    "home",
    "journal",
    "journal_entry",
    "journal_entry_text",
    "journal_export",
    "login",
    "login_certificate",
    "login_code",
    "logout",
    "notifications",
    "opposition",
    "record",
    "unblock",
]
