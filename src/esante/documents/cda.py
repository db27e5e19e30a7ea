"""HL7 CDA R2 documents: safe parsing, metadata and prescription lines, readable rendering.

Parsing goes through defusedxml with DTDs forbidden: no external entities (XXE), no entity
expansion bombs, no network. Rendering builds HTML from the narrative blocks with a whitelist of
elements, escaping every text: nothing in a document can become markup or script in the portal.

Luxembourg's CDA: patient identifier root ``1.3.182.4.4`` (13-digit matricule); professional
identifiers ``1.3.182.4.1`` / ``1.3.182.4.6``; ePrescription medication prescription items
``1.3.182.11.5.2.3.1``; eDispensation dispensed supply entries ``1.3.182.11.6.2.3.1``.
"""

import datetime
import zoneinfo
from dataclasses import dataclass, field
from html import escape
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

NS = "urn:hl7-org:v3"
N = {"h": NS}
PATIENT_ROOT = "1.3.182.4.4"
PROFESSIONAL_ROOTS = ("1.3.182.4.1", "1.3.182.4.6")
PRESCRIPTION_ITEM_TEMPLATE = "1.3.182.11.5.2.3.1"
DISPENSED_SUPPLY_TEMPLATE = "1.3.182.11.6.2.3.1"
LUXEMBOURG = zoneinfo.ZoneInfo("Europe/Luxembourg")


#: Largest quantity accepted on a prescription line (boxes, bottles, ampoules).
MAX_QUANTITY = 10_000
#: Narrative nesting rendered as markup; deeper content is rendered as plain text.
MAX_NARRATIVE_DEPTH = 32


class CdaError(ValueError):
    """The file is not a CDA document we can accept; the message says why, in French."""


@dataclass
class CdaLine:
    medication: str
    medication_code: str
    dosage: str
    quantity: int
    unit: str


@dataclass
class CdaDocument:
    root: Element
    patient_matricule: str
    type_code: str
    title: str
    effective_at: datetime.datetime | None
    confidentiality: str
    author_name: str
    author_matricule: str
    document_id: str
    text: str
    lines: list[CdaLine] = field(default_factory=list)


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def parse_ts(value: str) -> datetime.datetime | None:
    """HL7 TS (``YYYYMMDDHHMMSS[+zzzz]``) to an aware datetime; local Luxembourg time when no offset."""
    if not value:
        return None
    digits, offset = value, ""
    for sign in "+-":
        if sign in value[8:]:
            index = value.index(sign, 8)
            digits, offset = value[:index], value[index:]
    digits = digits.split(".")[0].ljust(14, "0")[:14]
    try:
        naive = datetime.datetime.strptime(digits, "%Y%m%d%H%M%S")  # noqa: DTZ007 - offset applied below
    except ValueError:
        return None
    if offset:
        if len(offset) not in (3, 5) or not offset[1:].isdigit():
            return None  # an unreadable offset is an unreadable date
        hours, minutes = int(offset[1:3]), int(offset[3:5] or 0)
        if hours > 14 or minutes > 59:
            return None
        delta = datetime.timedelta(hours=hours, minutes=minutes)
        return naive.replace(tzinfo=datetime.timezone(delta if offset[0] == "+" else -delta))
    return naive.replace(tzinfo=LUXEMBOURG)


def _text(element: Element | None) -> str:
    # Pieces joined with spaces: table cells and list items must not run into each other.
    return " ".join(" ".join(element.itertext()).split()) if element is not None else ""


def _person_name(element: Element | None) -> str:
    if element is None:
        return ""
    given = " ".join(_text(g) for g in element.findall("h:given", N))
    family = " ".join(_text(f) for f in element.findall("h:family", N))
    prefix = " ".join(_text(p) for p in element.findall("h:prefix", N))
    return " ".join(part for part in (prefix, given, family) if part) or _text(element)


def _has_template(element: Element, root: str) -> bool:
    return any(t.get("root") == root for t in element.findall("h:templateId", N))


def _lines(root: Element) -> list[CdaLine]:
    lines = []
    for item in root.iter(_q("substanceAdministration")):
        if not _has_template(item, PRESCRIPTION_ITEM_TEMPLATE):
            continue
        material = item.find("h:consumable/h:manufacturedProduct/h:manufacturedMaterial", N)
        name = _text(material.find("h:name", N)) if material is not None else ""
        code_element = material.find("h:code", N) if material is not None else None
        quantity_element = item.find("h:entryRelationship/h:supply/h:quantity", N)
        raw_quantity = quantity_element.get("value", "0") if quantity_element is not None else "0"
        try:
            value = float(raw_quantity)
        except ValueError:
            raise CdaError("quantité prescrite illisible dans une ligne de prescription") from None
        if not (0 < value <= MAX_QUANTITY) or value != int(value):
            raise CdaError(
                f"quantité prescrite « {raw_quantity[:20]} » hors limites (entier de 1 à {MAX_QUANTITY})"
            )
        quantity = int(value)
        if not name:
            raise CdaError("ligne de prescription incomplète (médicament ou quantité manquant)")
        lines.append(
            CdaLine(
                medication=name,
                medication_code=code_element.get("code", "") if code_element is not None else "",
                dosage=_text(item.find("h:text", N)),
                quantity=quantity,
                unit=quantity_element.get("unit", "") if quantity_element is not None else "",
            )
        )
    return lines


def parse(data: bytes) -> CdaDocument:
    """Parses a CDA document; raises CdaError (in French) when it is hostile, malformed or not CDA."""
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise CdaError("document XML refusé : DTD ou entités interdites") from None
    except ParseError as exc:
        raise CdaError(f"document XML mal formé ({exc})") from None
    if root.tag != _q("ClinicalDocument"):
        raise CdaError("le document XML n'est pas un document HL7 CDA (ClinicalDocument attendu)")
    matricule = ""
    for identifier in root.findall("h:recordTarget/h:patientRole/h:id", N):
        if identifier.get("root") == PATIENT_ROOT:
            matricule = identifier.get("extension", "")
    if not matricule:
        raise CdaError(f"matricule du patient absent (identifiant de racine {PATIENT_ROOT})")
    code = root.find("h:code", N)
    author = root.find("h:author/h:assignedAuthor", N)
    author_matricule = ""
    if author is not None:
        for identifier in author.findall("h:id", N):
            if identifier.get("root") in PROFESSIONAL_ROOTS:
                author_matricule = identifier.get("extension", "")
    doc_id = root.find("h:id", N)
    narrative = [_text(t) for t in root.iter(_q("text"))]
    effective = root.find("h:effectiveTime", N)
    confidentiality = root.find("h:confidentialityCode", N)
    return CdaDocument(
        root=root,
        patient_matricule=matricule,
        type_code=code.get("code", "") if code is not None else "",
        title=_text(root.find("h:title", N)),
        effective_at=parse_ts(effective.get("value", "")) if effective is not None else None,
        confidentiality=(confidentiality.get("code", "N") if confidentiality is not None else "N"),
        author_name=_person_name(author.find("h:assignedPerson/h:name", N)) if author is not None else "",
        author_matricule=author_matricule,
        document_id=(
            f"{doc_id.get('root', '')}^{doc_id.get('extension', '')}".strip("^") if doc_id is not None else ""
        ),
        text=" ".join(part for part in narrative if part),
        lines=_lines(root),
    )


_BLOCKS = {
    "paragraph": "p",
    "list": "ul",
    "item": "li",
    "table": "table",
    "thead": "thead",
    "tbody": "tbody",
    "tr": "tr",
    "th": "th",
    "td": "td",
    "caption": "caption",
    "content": "span",
    "br": "br",
}


def _narrative_html(element: Element, depth: int = 0) -> str:
    if depth > MAX_NARRATIVE_DEPTH:
        # Hostile or absurd nesting: its text only, without recursing further.
        return escape(" ".join(" ".join(element.itertext()).split()))
    parts = [escape(element.text or "")]
    for child in element:
        local = child.tag.split("}")[-1]
        tag = _BLOCKS.get(local)
        if local == "list" and child.get("listType") == "ordered":
            tag = "ol"
        inner = _narrative_html(child, depth + 1)
        if tag == "br":
            parts.append("<br>")
        elif tag:
            parts.append(f"<{tag}>{inner}</{tag}>")
        else:
            parts.append(inner)  # unknown elements: their text only, never their markup
        parts.append(escape(child.tail or ""))
    return "".join(parts)


def render_html(document: CdaDocument) -> str:
    """The document's sections as safe HTML (headings, paragraphs, lists, tables)."""
    out: list[str] = []
    for section in document.root.iter(_q("section")):
        title = _text(section.find("h:title", N))
        text = section.find("h:text", N)
        if title:
            out.append(f"<h3>{escape(title)}</h3>")
        if text is not None:
            out.append(f'<div class="cda-narrative">{_narrative_html(text)}</div>')
    return "\n".join(out)


def summary(document: CdaDocument) -> dict[str, Any]:
    return {
        "type_code": document.type_code,
        "title": document.title,
        "author": document.author_name,
        "lines": len(document.lines),
    }
