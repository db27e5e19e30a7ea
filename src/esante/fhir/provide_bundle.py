"""IHE MHD ITI-65 "Provide Document Bundle": a ``transaction`` Bundle (a List as submission set,
DocumentReferences, Binaries) <-> ``documents_provide`` submissions, and the
``transaction-response`` Bundle in request order. No rules here."""

import binascii
import uuid
from typing import Any

from esante.documents.importing import document_reference_submission
from esante.documents.models import Document

from .outcome import invalid

_TYPES = {"List", "DocumentReference", "Binary"}


def submissions(bundle: dict[str, Any]) -> list[tuple[bytes, dict[str, Any]]]:
    """The documents of a transaction Bundle; ``FhirError`` (400) for anything else."""
    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
        raise invalid("invalid-bundle", "ITI-65 attend un Bundle de type « transaction ».")
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise invalid("invalid-bundle", "Le Bundle ne contient aucune entrée.")
    binaries: dict[str, Any] = {}
    references: list[dict[str, Any]] = []
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") not in _TYPES:
            raise invalid("invalid-entry", "Chaque entrée est une List, une DocumentReference ou un Binary.")
        method = (entry.get("request") or {}).get("method")
        if method != "POST":
            raise invalid("invalid-entry", "Chaque entrée d'un ITI-65 est créée (request.method POST).")
        if resource["resourceType"] == "Binary":
            if resource.get("id"):
                binaries[f"Binary/{resource['id']}"] = resource
            if entry.get("fullUrl"):
                binaries[str(entry["fullUrl"])] = resource
        elif resource["resourceType"] == "DocumentReference":
            references.append(resource)
    if not references:
        raise invalid("invalid-bundle", "Le Bundle ne contient aucune DocumentReference.")
    found = []
    for reference in references:
        try:
            found.append(document_reference_submission(reference, binaries))
        except (ValueError, KeyError, TypeError, IndexError, AttributeError, binascii.Error):
            raise invalid(
                "invalid-document-reference", "Une DocumentReference est illisible (contenu, pièce jointe)."
            ) from None
    return found


def response(bundle: dict[str, Any], filed: list[tuple[Document, bool]]) -> dict[str, Any]:
    """The transaction-response: one entry per request entry, in request order, with its status
    and location (a Binary is located at the document that carries its bytes)."""
    documents = iter(filed)
    by_attachment: dict[str, Document] = {}
    statuses: list[tuple[str, str]] = []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "DocumentReference":
            document, created = next(documents)
            url = str(((resource.get("content") or [{}])[0].get("attachment") or {}).get("url", ""))
            by_attachment[url] = document
            statuses.append(
                ("201 Created" if created else "200 OK", f"DocumentReference/{document.public_id}")
            )
        else:
            statuses.append(("", ""))
    out = []
    for entry, (status, location) in zip(bundle["entry"], statuses, strict=True):
        resource = entry["resource"]
        if resource["resourceType"] == "Binary":
            carrier = by_attachment.get(str(entry.get("fullUrl", ""))) or by_attachment.get(
                f"Binary/{resource.get('id')}"
            )
            status = "201 Created"
            location = f"Binary/{carrier.public_id}" if carrier else f"Binary/{uuid.uuid4()}"
        elif resource["resourceType"] == "List":
            status, location = "201 Created", f"List/{uuid.uuid4()}"
        out.append({"response": {"status": status, "location": location}})
    return {"resourceType": "Bundle", "type": "transaction-response", "entry": out}
