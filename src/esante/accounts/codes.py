"""Secrets handed to people: activation codes and one-time codes.

Neither is stored in clear. Both are kept as an HMAC-SHA256 under the platform's secret key
(Django's ``salted_hmac`` with a purpose-specific salt) and compared with ``hmac.compare_digest``.
A keyed hash rather than a password hasher: the codes are random and short-lived, so a slow
hash adds nothing, and without the secret key a stolen database does not let anyone test codes.
Rotating ``ESANTE_SECRET_KEY`` therefore invalidates outstanding letters and codes.
"""

import hmac
import secrets

from django.utils.crypto import salted_hmac

# No 0/O, 1/I/L, 5/S, 8/B, 2/Z: a code read from paper and typed again must not be ambiguous.
ACTIVATION_ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"
ACTIVATION_GROUPS = 4
ACTIVATION_GROUP_LENGTH = 4  # 16 characters from 25: about 74 bits of entropy

_ACTIVATION_SALT = "esante.accounts.activation-code"
_OTP_SALT = "esante.accounts.one-time-code"
_CERTIFICATE_SALT = "esante.accounts.certificate-presentation"


def activation_code_new() -> str:
    """A fresh activation code, printed in groups: ``ACDE-FGHJ-KMNP-QRTU``."""
    raw = "".join(
        secrets.choice(ACTIVATION_ALPHABET) for _ in range(ACTIVATION_GROUPS * ACTIVATION_GROUP_LENGTH)
    )
    return "-".join(raw[i : i + ACTIVATION_GROUP_LENGTH] for i in range(0, len(raw), ACTIVATION_GROUP_LENGTH))


def activation_code_normalise(value: str) -> str:
    """What the professional typed, without spaces and dashes, in capitals."""
    return "".join(ch for ch in value.upper() if ch not in " -\t")


def activation_code_digest(code: str) -> str:
    return salted_hmac(_ACTIVATION_SALT, activation_code_normalise(code), algorithm="sha256").hexdigest()


def one_time_code_new(length: int = 6) -> str:
    return f"{secrets.randbelow(10**length):0{length}d}"


def one_time_code_digest(scope: str, code: str) -> str:
    """Digest of a one-time code, bound to its device (``scope``) so a digest cannot be reused
    elsewhere. Truncated to 16 hex characters to fit django-otp's ``token`` column: 64 bits of a
    keyed MAC over a 6-digit code leave no practical collision."""
    return salted_hmac(_OTP_SALT, f"{scope}:{code.strip()}", algorithm="sha256").hexdigest()[:16]


def digests_match(stored: str | None, computed: str) -> bool:
    return bool(stored) and hmac.compare_digest(str(stored), computed)


def certificate_secret_new() -> str:
    """A request nonce or return token of a certificate presentation (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def certificate_digest(kind: str, secret: str) -> str:
    """Keyed digest of a presentation's nonce (``kind="request"``) or token (``kind="token"``)."""
    return salted_hmac(_CERTIFICATE_SALT, f"{kind}:{secret}", algorithm="sha256").hexdigest()
