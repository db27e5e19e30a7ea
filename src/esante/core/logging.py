"""Log hygiene: nothing that looks like a credential or a one-time code reaches a log line."""

import logging
import re

_SECRET_PARAM = re.compile(
    r"(?i)\b(password|passwd|mot_de_passe|code|otp|token|secret|activation_code|csrfmiddlewaretoken)=([^&\s]+)"
)


def scrub(text: str) -> str:
    return _SECRET_PARAM.sub(lambda m: f"{m.group(1)}=[masqué]", text)


class ScrubSecretsFilter(logging.Filter):
    """Masks ``name=value`` pairs whose name says they carry a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
