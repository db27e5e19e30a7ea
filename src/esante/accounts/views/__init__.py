"""Portal pages of the accounts app: terms, the five-step activation, login and logout.

HTTP only: forms parse input, services (``services``, ``activation``) decide and trace. One module
per page family: ``activation`` (terms and the wizard), ``signin`` (password, code, logout),
``certificate`` (LuxTrust), ``password`` (forgotten, change); ``session`` holds the session keys.
"""

from .activation import activation_done, activation_step, terms, terms_download
from .certificate import certificate_origin, certificate_return, login_certificate
from .password import password_change, password_forgotten
from .session import (
    COMPLETED_SESSION_KEY,
    LOGIN_METHOD_KEY,
    NEXT_KEY,
    PENDING_LOGIN_KEY,
    PRESENTATION_KEY,
    WIZARD_SESSION_KEY,
)
from .signin import login, login_code, logout

__all__ = [
    "COMPLETED_SESSION_KEY",
    "LOGIN_METHOD_KEY",
    "NEXT_KEY",
    "PENDING_LOGIN_KEY",
    "PRESENTATION_KEY",
    "WIZARD_SESSION_KEY",
    "activation_done",
    "activation_step",
    "certificate_origin",
    "certificate_return",
    "login",
    "login_certificate",
    "login_code",
    "logout",
    "password_change",
    "password_forgotten",
    "terms",
    "terms_download",
]
