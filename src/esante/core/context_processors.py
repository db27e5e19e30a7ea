from django.conf import settings
from django.http import HttpRequest

HELPDESK_PHONE = "(+352) 27 12 50 18 33"
HELPDESK_EMAIL = "helpdesk@esante.lu"


def platform(request: HttpRequest) -> dict[str, object]:
    return {
        "helpdesk_phone": HELPDESK_PHONE,
        "helpdesk_email": HELPDESK_EMAIL,
        "demo_mode": settings.DEMO_MODE,
    }
