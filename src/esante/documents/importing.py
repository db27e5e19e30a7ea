"""Reading submissions for ``esante import_documents``: a folder with a manifest, or FHIR Bundles.

Manifest (``manifest.csv`` in the folder, UTF-8, comma separated), one line per file::

    file,matricule,type_code,title,clinical_at,author,source_system,binder,confidentiality,external_id,media_type

Only ``file`` and ``source_system`` are required for a CDA (it carries its own metadata); a PDF
or text file also needs ``matricule``, ``type_code`` (LOINC), ``title``, ``clinical_at``
(ISO 8601) and ``author``. ``author`` is a professional's matricule or a name.

FHIR: each ``*.json`` file is a Bundle of ``DocumentReference`` resources whose
``content[0].attachment`` either holds ``data`` (base64) or a ``url`` ``Binary/<id>`` pointing to
a ``Binary`` entry of the same bundle. The patient is ``subject.identifier`` (system
``urn:oid:1.3.182.4.4``), the type ``type.coding`` (LOINC), the author the first ``author`` with an
``identifier``, a ``display`` or a contained Practitioner's name, the confidentiality ``securityLabel``.
"""

import base64
import binascii
import csv
import datetime
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esante.accounts.models import Professional

MATRICULE_SYSTEM = "urn:oid:1.3.182.4.4"


@dataclass
class Submission:
    label: str  # where it came from, for the report
    content: bytes = b""
    arguments: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def _author(value: str) -> dict[str, Any]:
    if value.isdigit():
        professional = Professional.objects.filter(matricule=value).first()
        if professional is not None:
            return {"author": professional}
    return {"author_name": value} if value else {}


def _when(value: str) -> datetime.datetime | None:
    if not value:
        return None
    moment = datetime.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("date clinique sans fuseau horaire (ISO 8601 avec décalage attendu)")
    return moment


def from_manifest(folder: Path) -> Iterator[Submission]:
    with (folder / "manifest.csv").open(encoding="utf-8-sig", newline="") as fh:
        for number, row in enumerate(csv.DictReader(fh), start=2):
            label = f"manifest.csv ligne {number} ({row.get('file', '')})"
            path = folder / (row.get("file") or "")
            if not row.get("file") or not path.is_file() or path.resolve().parent != folder.resolve():
                yield Submission(label, error="fichier introuvable dans le dossier")
                continue
            try:
                clinical_at = _when(row.get("clinical_at", ""))
            except ValueError as exc:
                yield Submission(label, error=str(exc))
                continue
            arguments: dict[str, Any] = {
                "patient_matricule": row.get("matricule", ""),
                "type_code": row.get("type_code", ""),
                "title": row.get("title", ""),
                "clinical_at": clinical_at,
                "source_system": row.get("source_system") or "import",
                "binder": row.get("binder", ""),
                "confidentiality": row.get("confidentiality", ""),
                "external_id": row.get("external_id", ""),
                "media_type": row.get("media_type") or None,
                **_author(row.get("author", "")),
            }
            yield Submission(label, path.read_bytes(), arguments)


def from_bundle(path: Path) -> Iterator[Submission]:
    try:
        bundle = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        yield Submission(path.name, error="JSON invalide")
        return
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        yield Submission(path.name, error="le fichier n'est pas un Bundle FHIR")
        return
    binaries = {}
    references = []
    for index, entry in enumerate(bundle.get("entry") or []):
        resource = (entry or {}).get("resource") or {}
        if resource.get("resourceType") == "Binary":
            binaries[f"Binary/{resource.get('id')}"] = resource
            if entry.get("fullUrl"):
                binaries[entry["fullUrl"]] = resource
        elif resource.get("resourceType") == "DocumentReference":
            references.append((index, resource))
    for index, reference in references:
        label = f"{path.name} entrée {index}"
        try:
            yield Submission(label, *document_reference_submission(reference, binaries))
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            yield Submission(label, error=f"DocumentReference illisible : {exc}")


def _author_value(author: Any, resource: dict[str, Any]) -> str:
    """What names one ``author`` entry: its identifier (a professional's matricule), its display,
    or the name of the contained Practitioner it references (``#id``); ``""`` for a reference to
    a resource this platform cannot read."""
    if not isinstance(author, dict):
        return ""
    value = (author.get("identifier") or {}).get("value") or author.get("display") or ""
    reference = str(author.get("reference") or "")
    if value or not reference.startswith("#"):
        return str(value)
    for contained in resource.get("contained") or []:
        if contained.get("resourceType") == "Practitioner" and f"#{contained.get('id')}" == reference:
            name = (contained.get("name") or [{}])[0]
            return " ".join([*name.get("given", []), name.get("family", "")]).strip()
    return ""


def document_reference_submission(
    resource: dict[str, Any], binaries: dict[str, Any]
) -> tuple[bytes, dict[str, Any]]:
    """The content and ``document_submit`` arguments of an MHD DocumentReference whose
    attachment is inline or in one of ``binaries`` (by ``Binary/id`` or ``fullUrl``)."""
    attachment = resource["content"][0]["attachment"]
    media_type = attachment.get("contentType")
    if "data" in attachment:
        content = base64.b64decode(attachment["data"], validate=True)
    else:
        binary = binaries[attachment["url"]]
        content = base64.b64decode(binary["data"], validate=True)
        media_type = media_type or binary.get("contentType")
    identifier = (resource.get("subject") or {}).get("identifier") or {}
    matricule = identifier.get("value", "") if identifier.get("system") == MATRICULE_SYSTEM else ""
    loinc = next(
        (
            c.get("code", "")
            for c in (resource.get("type") or {}).get("coding", [])
            if "loinc" in c.get("system", "")
        ),
        "",
    )
    author_value = next(
        (value for author in resource.get("author") or [] if (value := _author_value(author, resource))), ""
    )
    security = [
        c.get("code") for label in resource.get("securityLabel") or [] for c in label.get("coding", [])
    ]
    master = resource.get("masterIdentifier") or {}
    arguments = {
        "patient_matricule": matricule,
        "type_code": loinc,
        "title": resource.get("description") or attachment.get("title", ""),
        "clinical_at": _when(resource.get("date", "")),
        "source_system": "FHIR",
        "confidentiality": next((code for code in security if code in ("N", "R", "V")), ""),
        "external_id": master.get("value", ""),
        "media_type": media_type,
        **_author(author_value),
    }
    return content, arguments


def submissions(path: Path) -> Iterator[Submission]:
    """Every submission found at ``path``: a folder with ``manifest.csv``, a Bundle file, or a
    folder of Bundle files."""
    if path.is_dir() and (path / "manifest.csv").is_file():
        yield from from_manifest(path)
    elif path.is_dir():
        for bundle in sorted(path.glob("*.json")):
            yield from from_bundle(bundle)
    elif path.suffix.lower() == ".json":
        yield from from_bundle(path)
    else:
        yield Submission(str(path), error="ni dossier avec manifest.csv, ni Bundle FHIR (.json)")
