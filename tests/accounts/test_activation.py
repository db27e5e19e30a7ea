"""The five-step activation through the portal (guide pp. 4-9)."""

import datetime
import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone
from freezegun import freeze_time

from esante.accounts.models import ActivationLetter, ActivationWizard, Certificate, Professional
from esante.accounts.services import activation_letter_issue
from esante.audit.models import AuditEvent

from .conftest import DAY, NOW, PASSWORD, Pki, present

pytestmark = pytest.mark.django_db

URL = "/professionnel/activation/"


def step_url(n: int) -> str:
    return f"{URL}etape/{n}/"


def accept_terms(client: Client) -> None:
    response = client.post(URL, {"accept": "on"})
    assert response.status_code == 302 and response["Location"] == step_url(1)


def last_sms(settings: Any) -> dict[str, str]:
    files = sorted(Path(settings.OUTBOX_DIR).glob("*.json"))
    return dict(json.loads(files[-1].read_text()))


def sms_code(settings: Any) -> str:
    match = re.search(r"\b(\d{6})\b", last_sms(settings)["text"])
    assert match
    return match.group(1)


def walk_to_step(client: Client, pki: Pki, code: str, step: int, *, cert: Any = None) -> None:
    accept_terms(client)
    if step == 1:
        return
    cert = cert or pki.issue()
    response = present(client, cert, start_url=step_url(1))
    assert response["Location"] == step_url(2)
    if step == 2:
        return
    response = client.post(step_url(2), {"received": "oui", "matricule": "19750315006", "code": code})
    assert response["Location"] == step_url(3), response.content.decode()[-2000:]
    if step == 3:
        return
    response = client.post(step_url(3), {"next": ""})
    assert response["Location"] == step_url(4)


def test_terms_page_shows_the_guide_labels(client: Client) -> None:
    page = client.get(URL).content.decode()
    for label in (
        "PRÉ-REQUIS",
        "Vous ne retrouvez plus votre courrier d'activation?",
        "Des difficultés pour activer votre compte ?",
        "En cochant cette case, j&#x27;accepte les Conditions Générales d&#x27;Utilisation.",
        "Activer mon compte",
        "Téléchargeables en PDF",
        "(+352) 27 12 50 18 33",
    ):
        assert label in page, label


def test_terms_pdf_is_downloadable(client: Client) -> None:
    response = client.get(f"{URL}cgu.pdf")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")


def test_terms_must_be_accepted(client: Client) -> None:
    response = client.post(URL, {})
    assert response.status_code == 200
    assert ActivationWizard.objects.count() == 0


def test_full_activation_by_sms(client: Client, pki: Pki, registered: Any, settings: Any) -> None:
    professional, code = registered
    walk_to_step(client, pki, code, 4)
    page = client.get(step_url(4)).content.decode()
    for label in ("Mot de passe *", "Confirmation du mot de passe *", "Mobile", "E-mail", "Valider"):
        assert label in page
    professional.refresh_from_db()
    assert professional.state == Professional.State.REGISTERED
    assert not professional.user.is_active

    response = client.post(
        step_url(4),
        {
            "action": "choose",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "channel": "sms",
            "address": "+352 621 111 222",
        },
    )
    assert response["Location"] == step_url(4)
    assert last_sms(settings)["to"] == "+352621111222"
    assert "Code reçu par SMS ou par E-mail *" in client.get(step_url(4)).content.decode()
    professional.refresh_from_db()
    assert professional.state == Professional.State.REGISTERED  # nothing active before the end

    response = client.post(step_url(4), {"action": "verify", "code": sms_code(settings)})
    assert response["Location"] == f"{URL}confirmation/"
    page = client.get(f"{URL}confirmation/").content.decode()
    assert "Votre activation est terminée !" in page
    assert "Votre compte est bien créé et sécurisé !" in page
    assert "Connectez-vous" in page

    professional.refresh_from_db()
    assert professional.state == Professional.State.ACTIVE
    assert professional.user.is_active and professional.user.check_password(PASSWORD)
    assert professional.terms_version and professional.terms_accepted_at
    assert professional.user.smsdevice_set.get().confirmed
    assert (
        Certificate.objects.get(professional=professional).subject == "GN=Anne,SN=Muller,CN=Anne Muller,C=LU"
    )
    assert ActivationLetter.objects.get(professional=professional).used_at is not None
    actions = list(
        AuditEvent.objects.filter(action__startswith="accounts.activation.").values_list("action", "outcome")
    )
    assert actions == [
        ("accounts.activation.terms", "success"),
        ("accounts.activation.certificate", "success"),
        ("accounts.activation.code", "success"),
        ("accounts.activation.information", "success"),
        ("accounts.activation.complete", "success"),
    ]
    assert AuditEvent.objects.filter(action="accounts.otp.send", outcome="success").count() == 1


WRONG = "Le matricule ou le code d&#x27;activation est incorrect."


def submit_code(client: Client, code: str, matricule: str = "19750315006", **headers: str) -> str:
    return client.post(
        step_url(2), {"received": "oui", "matricule": matricule, "code": code}, **headers
    ).content.decode()


def test_full_activation_by_email_without_typing_dashes(client: Client, pki: Pki, registered: Any) -> None:
    professional, code = registered
    accept_terms(client)
    present(client, pki.issue(), start_url=step_url(1))
    response = client.post(
        step_url(2), {"received": "oui", "matricule": "1975 0315 006", "code": code.replace("-", " ").lower()}
    )
    assert response["Location"] == step_url(3)
    page = client.get(step_url(3)).content.decode()
    for shown in (
        "19750315006",
        "Muller",
        "Anne",
        "anne.muller@pharmacie.lu",
        "Pharmacie du Globe",
        "(+352) 27 12 50 18 33",
    ):
        assert shown in page
    client.post(step_url(3), {"next": ""})
    client.post(
        step_url(4),
        {
            "action": "choose",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "channel": "email",
            "address": "anne@example.lu",
        },
    )
    assert mail.outbox[-1].to == ["anne@example.lu"]
    code_sent = re.search(r"\b(\d{6})\b", mail.outbox[-1].body)
    assert code_sent
    assert client.post(step_url(4), {"action": "verify", "code": code_sent.group(1)})["Location"].endswith(
        "confirmation/"
    )
    professional.refresh_from_db()
    assert professional.user.emaildevice_set.get().email == "anne@example.lu"


def test_steps_cannot_be_skipped(client: Client, pki: Pki, registered: Any) -> None:
    assert client.get(step_url(1))["Location"] == URL  # no wizard yet
    accept_terms(client)
    for step in (2, 3, 4):
        assert client.get(step_url(step))["Location"] == step_url(1)
        assert client.post(
            step_url(step),
            {
                "action": "choose",
                "password1": PASSWORD,
                "password2": PASSWORD,
                "channel": "sms",
                "address": "+352621111222",
            },
        )["Location"] == step_url(1)
    assert client.get(f"{URL}confirmation/")["Location"] == URL
    assert ActivationWizard.objects.get().step == 1


def test_completed_wizard_cannot_be_replayed(
    client: Client, pki: Pki, registered: Any, settings: Any
) -> None:
    _, code = registered
    walk_to_step(client, pki, code, 4)
    client.post(
        step_url(4),
        {
            "action": "choose",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "channel": "sms",
            "address": "+352621111222",
        },
    )
    client.post(step_url(4), {"action": "verify", "code": sms_code(settings)})
    assert client.get(f"{URL}confirmation/").status_code == 200
    assert client.get(f"{URL}confirmation/")["Location"] == URL  # shown once
    assert client.post(step_url(4), {"action": "verify", "code": "123456"})["Location"] == URL
    # The used letter no longer opens a new activation.
    other = Client()
    accept_terms(other)
    present(other, pki.issue(), start_url=step_url(1))
    assert WRONG in submit_code(other, code)


def test_previous_step_goes_back_and_forgets(client: Client, pki: Pki, registered: Any) -> None:
    _, code = registered
    walk_to_step(client, pki, code, 3)
    assert client.post(step_url(3), {"previous": "1"})["Location"] == step_url(2)
    wizard = ActivationWizard.objects.get()
    assert wizard.step == 2 and wizard.professional is None
    assert client.post(step_url(2), {"previous": "1"})["Location"] == step_url(1)
    assert ActivationWizard.objects.get().certificate_pem == ""


def test_not_received_explains_how_to_get_a_letter(client: Client, pki: Pki, registered: Any) -> None:
    _, code = registered
    walk_to_step(client, pki, code, 2)
    page = client.post(step_url(2), {"received": "non"}).content.decode()
    assert "Contactez notre helpdesk" in page and "nouveau courrier" in page


def test_wrong_matricule_and_wrong_code_get_the_same_message(
    client: Client, pki: Pki, registered: Any
) -> None:
    _, code = registered
    walk_to_step(client, pki, code, 2)
    assert WRONG in submit_code(client, code, matricule="19800101002")
    assert WRONG in submit_code(client, "AAAA-AAAA-AAAA-AAAA")
    assert list(
        AuditEvent.objects.filter(action="accounts.activation.code").values_list("outcome", flat=True)
    ) == ["failure", "failure"]


def test_wrong_codes_from_every_address_block_the_letter_at_the_configured_number(
    client: Client, pki: Pki, registered: Any, settings: Any
) -> None:
    settings.ESANTE_ACCOUNT_LOCK_AFTER_FAILURES = 5  # 100 by default
    _, code = registered
    walk_to_step(client, pki, code, 2)
    for number in range(5):  # two tries per address: no address is delayed
        address = f"192.0.2.{number // 2 + 1}"
        assert WRONG in submit_code(client, "AAAA-AAAA-AAAA-AAAA", REMOTE_ADDR=address)
    assert ActivationLetter.objects.get().failed_attempts == 5
    assert AuditEvent.objects.filter(action="accounts.activation_letter.block").count() == 1
    assert WRONG in submit_code(client, code)  # the right code no longer works
    assert ActivationWizard.objects.get().step == 2


def test_expired_letter_fails(client: Client, pki: Pki, registered: Any) -> None:
    _, code = registered
    with freeze_time(timezone.now() + datetime.timedelta(days=93)):
        walk_to_step(client, pki, code, 2)
        assert WRONG in submit_code(client, code)
    assert AuditEvent.objects.filter(
        action="accounts.activation.code", details__reason="letter_expired"
    ).exists()


def test_revoked_letter_fails(client: Client, pki: Pki, registered: Any) -> None:
    professional, old_code = registered
    _, new_code = activation_letter_issue(professional=professional)
    walk_to_step(client, pki, old_code, 2)
    assert WRONG in submit_code(client, old_code)
    assert client.post(step_url(2), {"received": "oui", "matricule": "19750315006", "code": new_code})[
        "Location"
    ] == step_url(3)


def test_activation_attempts_are_throttled_per_address(client: Client, pki: Pki, registered: Any) -> None:
    _, code = registered
    walk_to_step(client, pki, code, 2)
    for number in range(20):
        page = submit_code(client, "AAAA-AAAA-AAAA-AAAA", matricule=f"1985060203{number % 10}")
    assert "Réessayez après" in page
    assert "Réessayez après" in submit_code(client, code)
    assert AuditEvent.objects.filter(action="accounts.address.lock").count() == 1


def test_certificate_of_someone_else_is_refused(client: Client, pki: Pki, registered: Any) -> None:
    _, code = registered
    walk_to_step(client, pki, code, 2, cert=pki.issue(surname="Weber", given_name="Tom"))
    response = client.post(step_url(2), {"received": "oui", "matricule": "19750315006", "code": code})
    assert response["Location"] == step_url(1)
    assert AuditEvent.objects.filter(
        action="accounts.activation.certificate_mismatch", outcome="refused"
    ).exists()
    page = client.get(step_url(1)).content.decode()
    assert "n&#x27;est pas au nom du titulaire" in page


def test_step1_refuses_invalid_or_missing_certificates(client: Client, pki: Pki, registered: Any) -> None:
    accept_terms(client)
    page = present(client, None, start_url=step_url(1), REMOTE_ADDR="192.0.2.50")
    assert page["Location"] == step_url(1)
    assert "Aucun certificat LuxTrust n&#x27;a été présenté" in client.get(step_url(1)).content.decode()
    expired = pki.issue(not_before=NOW - 400 * DAY, not_after=NOW - DAY)
    present(client, expired, start_url=step_url(1))
    assert "Votre certificat a expiré." in client.get(step_url(1)).content.decode()
    # A certificate header from an address that is not a trusted proxy is not believed.
    present(client, pki.issue(), start_url=step_url(1), REMOTE_ADDR="192.0.2.50")
    assert ActivationWizard.objects.get().step == 1
    assert not Certificate.objects.exists()
    refusals = AuditEvent.objects.filter(action="accounts.activation.certificate", outcome="refused")
    assert [event.details["reason"] for event in refusals.order_by("sequence")] == [
        "no_certificate",
        "expired",
        "no_certificate",
    ]


def test_weak_password_is_refused_and_nothing_sent(
    client: Client, pki: Pki, registered: Any, settings: Any
) -> None:
    _, code = registered
    walk_to_step(client, pki, code, 4)
    for weak in ("court", "password1234", "19750315006ab"):
        page = client.post(
            step_url(4),
            {
                "action": "choose",
                "password1": weak,
                "password2": weak,
                "channel": "sms",
                "address": "+352621111222",
            },
        ).content.decode()
        assert "errorlist" in page
    page = client.post(
        step_url(4),
        {
            "action": "choose",
            "password1": PASSWORD,
            "password2": PASSWORD + "x",
            "channel": "sms",
            "address": "+352621111222",
        },
    ).content.decode()
    assert "Les deux mots de passe ne sont pas identiques." in page
    assert not list(Path(settings.OUTBOX_DIR).glob("*.json"))


def test_activation_code_for_channel_dies_after_three_tries(
    client: Client, pki: Pki, registered: Any, settings: Any
) -> None:
    professional, code = registered
    walk_to_step(client, pki, code, 4)
    client.post(
        step_url(4),
        {
            "action": "choose",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "channel": "sms",
            "address": "+352621111222",
        },
    )
    good = sms_code(settings)
    wrong = "000000" if good != "000000" else "111111"
    for _ in range(3):
        client.post(step_url(4), {"action": "verify", "code": wrong})
    assert client.post(step_url(4), {"action": "verify", "code": good}).status_code == 200
    professional.refresh_from_db()
    assert professional.state == Professional.State.REGISTERED


def test_csrf_is_enforced_on_activation_forms(csrf_client: Client, pki: Pki, registered: Any) -> None:
    assert csrf_client.post(URL, {"accept": "on"}).status_code == 403
    assert ActivationWizard.objects.count() == 0
    for step in (1, 2, 3, 4):
        assert csrf_client.post(step_url(step), {}).status_code == 403


def test_step1_skip_only_where_allowed(client: Client, registered: Any, settings: Any) -> None:
    accept_terms(client)
    client.post(step_url(1), {"skip": "1"})
    assert ActivationWizard.objects.get().step == 1
    assert AuditEvent.objects.get(action="accounts.activation.certificate").outcome == "refused"
    settings.ESANTE_ACTIVATION_CERTIFICATE_OPTIONAL = True
    assert "Continuer sans produit LuxTrust" in client.get(step_url(1)).content.decode()
    assert client.post(step_url(1), {"skip": "1"})["Location"] == step_url(2)
