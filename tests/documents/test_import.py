import base64
import hashlib
import json
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from esante.audit.models import AuditEvent
from esante.documents.models import Document, Prescription
from esante.patients.models import Patient

from . import pdfs
from .conftest import PEPPA, make_prescription

PDF = pdfs.clean_pdf()
MANIFEST = (
    "file,matricule,type_code,title,clinical_at,author,source_system,"
    "binder,confidentiality,external_id,media_type\n"
)
WHEN = "2026-11-20T10:00:00+01:00"


@pytest.mark.django_db
def test_folder_with_manifest(peppa: Patient, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "rx.xml").write_bytes(make_prescription())
    (tmp_path / "lettre.pdf").write_bytes(PDF)
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00")
    (tmp_path / "manifest.csv").write_text(
        MANIFEST
        + "rx.xml,,,,,,eServices,,,,\n"
        + f"lettre.pdf,{PEPPA},18842-5,Lettre de sortie,{WHEN},Dr Klein,CHL,,N,L-1,application/pdf\n"
        + f"image.png,{PEPPA},18748-4,Radio,{WHEN},Dr Klein,CHL,,,,\n"
        + f"absent.pdf,{PEPPA},18842-5,X,{WHEN},Dr X,CHL,,,,\n"
        + f"../etc.pdf,{PEPPA},18842-5,X,{WHEN},Dr X,CHL,,,,\n",
        encoding="utf-8",
    )
    with pytest.raises(CommandError) as caught:
        call_command("import_documents", str(tmp_path), verbosity=0)
    assert caught.value.returncode == 1
    err = capsys.readouterr().err
    assert "ligne 4 (image.png) : format non reconnu" in err
    assert "absent.pdf) : fichier introuvable" in err and "etc.pdf) : fichier introuvable" in err
    assert Document.objects.count() == 2 and Prescription.objects.count() == 1
    # Running it again skips what was received: nothing is duplicated.
    with pytest.raises(CommandError):
        call_command("import_documents", str(tmp_path), verbosity=0)
    assert Document.objects.count() == 2
    assert "0 importés, 2 déjà présents, 3 refusés" in capsys.readouterr().out


@pytest.mark.django_db
def test_fhir_bundle(peppa: Patient, tmp_path: Path) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:doc-1",
                "resource": {
                    "resourceType": "DocumentReference",
                    "status": "current",
                    "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.3.4"},
                    "type": {"coding": [{"system": "http://loinc.org", "code": "11502-2"}]},
                    "subject": {"identifier": {"system": "urn:oid:1.3.182.4.4", "value": PEPPA}},
                    "date": "2026-11-20T08:30:00+01:00",
                    "author": [{"display": "Laboratoires Réunis"}],
                    "description": "Bilan sanguin",
                    "securityLabel": [{"coding": [{"code": "R"}]}],
                    "content": [{"attachment": {"contentType": "application/pdf", "url": "Binary/b1"}}],
                },
            },
            {
                "resource": {
                    "resourceType": "Binary",
                    "id": "b1",
                    "contentType": "application/pdf",
                    "data": base64.b64encode(PDF).decode(),
                }
            },
            {"resource": {"resourceType": "DocumentReference", "content": [{"attachment": {"data": "!!"}}]}},
        ],
    }
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")
    with pytest.raises(CommandError):
        call_command("import_documents", str(path), verbosity=0)
    document = Document.objects.get()
    assert (document.title, document.confidentiality, document.class_code) == (
        "Bilan sanguin",
        "R",
        "laboratory",
    )
    assert document.external_id == "urn:oid:1.2.3.4" and document.author_name == "Laboratoires Réunis"
    # The unreadable entry is traced as a refused submission too.
    assert list(AuditEvent.objects.values_list("action", "outcome")) == [
        ("document.submit", "success"),
        ("document.submit", "refused"),
    ]


@pytest.mark.django_db
def test_pdf_with_javascript_is_refused_on_import(
    peppa: Patient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's file: /OpenAction << /S /JavaScript >>, imported "2 importés" before."""
    hostile = pdfs.pdf_with_open_action_javascript()
    (tmp_path / "lettre.pdf").write_bytes(hostile)
    (tmp_path / "manifest.csv").write_text(
        MANIFEST + f"lettre.pdf,{PEPPA},18842-5,Lettre,{WHEN},Dr Klein,CHL,,N,L-1,application/pdf\n",
        encoding="utf-8",
    )
    with pytest.raises(CommandError) as caught:
        call_command("import_documents", str(tmp_path), verbosity=0)
    assert caught.value.returncode == 1
    captured = capsys.readouterr()
    reason = (
        "document PDF refusé : il contient du contenu actif (JavaScript, action à l'ouverture (/OpenAction))"
    )
    assert f"refusé — manifest.csv ligne 2 (lettre.pdf) : {reason}" in captured.err
    assert "import terminé : 0 importés, 0 déjà présents, 1 refusés" in captured.out
    assert not Document.objects.exists()
    digest = hashlib.sha256(hostile).hexdigest()
    assert not default_storage.exists(f"documents/{digest[:2]}/{digest}.pdf")
    event = AuditEvent.objects.get()
    assert (event.action, event.outcome, event.object_id) == ("document.submit", "refused", "L-1")
    assert event.details == {"source": "CHL", "reason": reason}
