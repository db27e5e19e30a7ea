"""FHIR's two encodings: JSON always, XML where the IHE profiles require it.

PDQm's Patient Demographics Supplier and MHD's Document Responder "SHALL support both json or
xml encoding", and so does MHD's Document Recipient: Patient (ITI-78), DocumentReference
(ITI-67), the ITI-65 transaction and the CapabilityStatement answer in ``application/fhir+xml``
when ``_format`` or ``Accept`` asks for it, and ITI-65 takes a Bundle in XML (``read_xml``).
Everything else is JSON only, and a request that accepts nothing we serve is answered 406
before any view runs.
The XML is written by fhir.resources (its R4B models know each element's order; R4B's XML of
these resources is R4's) with lxml.
"""

import json
import logging
import re
from typing import Any

from django.http import HttpRequest, HttpResponse

logger = logging.getLogger("esante.fhir")

FHIR_XML = "application/fhir+xml"
JSON = "json"
XML = "xml"
_FORMATS = {
    "json": JSON, "application/json": JSON, "application/fhir+json": JSON, "application/json+fhir": JSON,
    "xml": XML, "text/xml": XML, "application/xml": XML, "application/fhir+xml": XML,
    "application/xml+fhir": XML,
}  # fmt: skip
_ANY = {"*/*", "application/*"}
#: Where XML is served: PDQm (Patient), MHD (DocumentReference, but not the document's own
#: bytes; the ITI-65 transaction at the base), and the CapabilityStatement that says so.
_XML_PATHS = re.compile(
    r"^/fhir/R4/(|metadata|Patient(/_search|/[^/]+)?|DocumentReference(/_search|/[^/]+)?)$"
)


class UnreadableXml(ValueError):
    """A request body that is not one FHIR resource in XML (or that carries a DTD or entities)."""


def read_xml(raw: bytes) -> dict[str, Any]:
    """A FHIR XML body as the FHIR JSON the routes read (MHD's Document Recipient takes both).

    defusedxml refuses any DTD or entity first (no XXE, no entity expansion); lxml then parses
    with entities and the network off, and fhir.resources turns it into its resource."""
    from defusedxml import DefusedXmlException
    from defusedxml import ElementTree as SafeTree
    from fhir.resources.R4B import get_fhir_model_class
    from lxml import etree

    try:
        root = SafeTree.fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (SafeTree.ParseError, DefusedXmlException, ValueError) as error:
        raise UnreadableXml(str(error)) from None
    namespace, _, resource_type = str(root.tag).partition("}")
    if namespace != "{http://hl7.org/fhir":
        raise UnreadableXml("not in the FHIR namespace")
    try:
        model = get_fhir_model_class(resource_type)
    except KeyError:
        raise UnreadableXml(f"unknown resource type {resource_type}") from None
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        resource = model.model_validate_xml(raw, xmlparser=parser)
    except (ValueError, TypeError, KeyError, AttributeError, etree.LxmlError) as error:
        raise UnreadableXml(str(error)) from None
    return dict(json.loads(resource.model_dump_json(exclude_none=True)))


class NotAcceptable(Exception):
    """The request asks for an encoding this address does not serve."""


def _accept(header: str) -> str:
    """The encoding ``Accept`` prefers (by q-value; JSON on a tie); ``NotAcceptable`` when it
    takes neither."""
    best: tuple[float, int, str] | None = None
    for part in header.split(","):
        media, *parameters = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media = media.lower()
        encoding = JSON if media in _ANY else _FORMATS.get(media)
        if encoding is None or quality <= 0:
            continue
        candidate = (quality, 1 if encoding == JSON else 0, encoding)
        if best is None or candidate > best:
            best = candidate
    if best is None:
        raise NotAcceptable
    return best[2]


def wanted(request: HttpRequest) -> str:
    """``JSON`` or ``XML``: ``_format`` first, then ``Accept`` (absent: JSON); ``NotAcceptable``
    for an encoding we do not write, or XML where no profile asks for it."""
    asked = request.GET.get("_format")
    if asked is not None:
        encoding = _FORMATS.get(asked.strip().lower())
        if encoding is None:
            raise NotAcceptable
    else:
        header = request.headers.get("Accept", "").strip()
        encoding = _accept(header) if header else JSON
    if encoding == XML and not _XML_PATHS.match(request.path):
        raise NotAcceptable
    return encoding


def as_xml(response: HttpResponse) -> HttpResponse:
    """The FHIR JSON ``response`` in XML, same status and headers."""
    from fhir.resources.R4B import get_fhir_model_class  # loaded only when XML is asked for

    body = json.loads(response.content)
    data = get_fhir_model_class(body["resourceType"]).model_validate(body).model_dump_xml()
    converted = HttpResponse(data, status=response.status_code, content_type=f"{FHIR_XML}; charset=utf-8")
    for name, value in response.items():
        if name.lower() not in ("content-type", "content-length"):
            converted[name] = value
    return converted
