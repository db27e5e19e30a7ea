"""Agency commands: ``esante add_professional`` and ``esante issue_activation``."""

import io
import re
from pathlib import Path
from typing import Any

import pypdf
import pytest
from django.core.management import CommandError, call_command

from esante.accounts.codes import ACTIVATION_ALPHABET
from esante.accounts.models import ActivationLetter, Professional
from esante.audit.models import AuditEvent

pytestmark = pytest.mark.django_db

ARGS = [
    "--matricule",
    "19750315006",
    "--profession",
    "pharmacist",
    "--last-name",
    "Muller",
    "--first-name",
    "Anne",
    "--email",
    "anne@pharmacie.lu",
    "--mobile",
    "+352 621 111 222",
    "--organisation",
    "Pharmacie du Globe",
]


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_add_professional_registers(db: Any) -> None:
    out = run("add_professional", *ARGS)
    assert "19750315006" in out
    professional = Professional.objects.get(matricule="19750315006")
    assert professional.state == Professional.State.REGISTERED
    assert professional.mobile == "+352621111222"
    assert not professional.user.is_active and not professional.user.has_usable_password()
    assert AuditEvent.objects.filter(action="accounts.professional.register").count() == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--matricule": "19750315007"}, "chiffre de contrôle"),
        ({"--matricule": "1975"}, "11 ou 13 chiffres"),
        ({"--profession": "astronaut"}, "Profession inconnue"),
        ({"--email": "anne-at-pharmacie"}, "adresse e-mail n'est pas valide"),
        ({"--mobile": "abc"}, "téléphone portable n'est pas valide"),
    ],
)
def test_add_professional_refuses_bad_input(db: Any, change: dict[str, str], message: str) -> None:
    args = list(ARGS)
    for flag, value in change.items():
        args[args.index(flag) + 1] = value
    with pytest.raises(CommandError, match=message):
        run("add_professional", *args)
    assert not Professional.objects.exists()


def test_add_professional_refuses_a_duplicate(db: Any) -> None:
    run("add_professional", *ARGS)
    with pytest.raises(CommandError, match="déjà enregistré"):
        run("add_professional", *ARGS)


def test_issue_activation_prints_the_code_and_writes_the_letter(db: Any, tmp_path: Path) -> None:
    run("add_professional", *ARGS)
    out = run("issue_activation", "--matricule", "19750315006", "--pdf", str(tmp_path / "letter.pdf"))
    match = re.search(r"^activation code: (\S+)$", out, re.MULTILINE)
    assert match
    code = match.group(1)
    assert len(code.replace("-", "")) == 16 and set(code.replace("-", "")) <= set(ACTIVATION_ALPHABET)
    letter = ActivationLetter.objects.get()
    assert code not in letter.code_digest and len(letter.code_digest) == 64
    assert (letter.expires_at - letter.issued_at).days >= 90
    pages = pypdf.PdfReader(tmp_path / "letter.pdf").pages
    text = " ".join(" ".join(page.extract_text() for page in pages).split())
    for expected in (
        "G.I.E. Agence eSanté Luxembourg",
        "Anne MULLER",
        "19750315006",
        code,
        "(+352) 27 12 50 18 33",
        "helpdesk@esante.lu",
        "J'active mon compte",
    ):
        assert expected in text, expected
    assert AuditEvent.objects.filter(action="accounts.activation_letter.issue").count() == 1


def test_new_letter_revokes_the_previous_one(db: Any) -> None:
    run("add_professional", *ARGS)
    run("issue_activation", "--matricule", "19750315006")
    run("issue_activation", "--matricule", "19750315006")
    first, second = ActivationLetter.objects.order_by("pk")
    assert first.revoked_at is not None and second.revoked_at is None


def test_issue_activation_unknown_matricule(db: Any) -> None:
    with pytest.raises(CommandError, match="aucun professionnel"):
        run("issue_activation", "--matricule", "19750315006")
