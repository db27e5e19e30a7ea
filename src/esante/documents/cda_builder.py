"""Writing CDA documents: ePrescriptions (demo data, tests), eDispensations and generic notes.

Follows the Agency's templates where we know them: header ``1.3.182.11.1`` (realmCode ``LU``),
ePrescription ``1.3.182.11.5.1`` with medication prescription items ``1.3.182.11.5.2.3.1``,
eDispensation ``1.3.182.11.6.1`` with dispensed supply entries ``1.3.182.11.6.2.3.1``.
"""

import datetime
from dataclasses import dataclass
from xml.etree.ElementTree import Element, SubElement, tostring  # noqa: S405 - writing only, never parsing

from .cda import DISPENSED_SUPPLY_TEMPLATE, NS, PATIENT_ROOT, PRESCRIPTION_ITEM_TEMPLATE

HEADER_TEMPLATE = "1.3.182.11.1"
EPRESCRIPTION_TEMPLATE = "1.3.182.11.5.1"
MEDICINE_TEMPLATE = "1.3.182.11.5.2.3.2"
MEDICINE_CODE_SYSTEM = "1.3.182.5.47"


@dataclass(frozen=True)
class Person:
    given: str
    family: str
    matricule: str = ""
    prefix: str = ""


@dataclass(frozen=True)
class Line:
    medication: str
    code: str
    dosage: str
    quantity: int
    unit: str = "boîte"


def ts(moment: datetime.datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%S%z")


def _el(parent: Element, tag: str, text: str | None = None, **attrs: str) -> Element:
    element = SubElement(parent, f"{{{NS}}}{tag}", attrs)
    if text is not None:
        element.text = text
    return element


def _name(parent: Element, person: Person) -> None:
    name = _el(parent, "name")
    if person.prefix:
        _el(name, "prefix", person.prefix)
    _el(name, "given", person.given)
    _el(name, "family", person.family)


def _header(
    *,
    document_id: str,
    type_code: str,
    type_name: str,
    title: str,
    at: datetime.datetime,
    confidentiality: str,
    patient_matricule: str,
    patient: Person,
    birth: datetime.date,
    sex: str,
    author: Person,
    organisation: str,
    templates: tuple[str, ...],
) -> Element:
    root = Element(f"{{{NS}}}ClinicalDocument")
    _el(root, "realmCode", code="LU")
    _el(root, "typeId", root="2.16.840.1.113883.1.3", extension="POCD_HD000040")
    for template in (HEADER_TEMPLATE, *templates):
        _el(root, "templateId", root=template)
    _el(root, "id", root="1.3.182.2.4", extension=document_id)
    _el(root, "code", code=type_code, codeSystem="2.16.840.1.113883.6.1", displayName=type_name)
    _el(root, "title", title)
    _el(root, "effectiveTime", value=ts(at))
    _el(root, "confidentialityCode", code=confidentiality, codeSystem="2.16.840.1.113883.5.25")
    _el(root, "languageCode", code="fr-LU")
    role = _el(_el(root, "recordTarget"), "patientRole")
    _el(role, "id", root=PATIENT_ROOT, extension=patient_matricule)
    person = _el(role, "patient")
    _name(person, patient)
    _el(person, "administrativeGenderCode", code=sex, codeSystem="2.16.840.1.113883.5.1")
    _el(person, "birthTime", value=birth.strftime("%Y%m%d"))
    author_el = _el(root, "author")
    _el(author_el, "time", value=ts(at))
    assigned = _el(author_el, "assignedAuthor")
    if author.matricule:
        _el(assigned, "id", root="1.3.182.4.1", extension=author.matricule)
    _name(_el(assigned, "assignedPerson"), author)
    _el(_el(assigned, "representedOrganization"), "name", organisation)
    custodian = _el(_el(_el(root, "custodian"), "assignedCustodian"), "representedCustodianOrganization")
    _el(custodian, "name", "Agence eSanté")
    return root


def prescription_cda(
    *,
    document_id: str,
    at: datetime.datetime,
    patient_matricule: str,
    patient: Person,
    birth: datetime.date,
    sex: str,
    prescriber: Person,
    organisation: str,
    lines: list[Line],
    confidentiality: str = "N",
) -> bytes:
    """An ePrescription CDA with one structured item per line and a readable narrative table."""
    root = _header(
        document_id=document_id,
        type_code="57833-6",
        type_name="Prescription for medication",
        title="Ordonnance médicamenteuse",
        at=at,
        confidentiality=confidentiality,
        patient_matricule=patient_matricule,
        patient=patient,
        birth=birth,
        sex=sex,
        author=prescriber,
        organisation=organisation,
        templates=(EPRESCRIPTION_TEMPLATE,),
    )
    section = _el(_el(_el(_el(root, "component"), "structuredBody"), "component"), "section")
    _el(section, "code", code="57828-6", codeSystem="2.16.840.1.113883.6.1")
    _el(section, "title", "Prescription")
    table = _el(_el(section, "text"), "table")
    head = _el(_el(table, "thead"), "tr")
    for label in ("Médicament", "Posologie", "Quantité"):
        _el(head, "th", label)
    body = _el(table, "tbody")
    for line in lines:
        row = _el(body, "tr")
        _el(row, "td", line.medication)
        _el(row, "td", line.dosage)
        _el(row, "td", f"{line.quantity} {line.unit}")
    for line in lines:
        item = _el(_el(section, "entry"), "substanceAdministration", classCode="SBADM", moodCode="RQO")
        _el(item, "templateId", root=PRESCRIPTION_ITEM_TEMPLATE)
        _el(item, "text", line.dosage)
        product = _el(_el(item, "consumable"), "manufacturedProduct")
        _el(product, "templateId", root=MEDICINE_TEMPLATE)
        material = _el(product, "manufacturedMaterial")
        _el(material, "code", code=line.code, codeSystem=MEDICINE_CODE_SYSTEM, displayName=line.medication)
        _el(material, "name", line.medication)
        supply = _el(
            _el(item, "entryRelationship", typeCode="COMP"), "supply", classCode="SPLY", moodCode="RQO"
        )
        _el(supply, "quantity", value=str(line.quantity), unit=line.unit)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + tostring(
        root, encoding="utf-8", xml_declaration=False
    )


def note_cda(
    *,
    document_id: str,
    type_code: str,
    type_name: str,
    title: str,
    at: datetime.datetime,
    patient_matricule: str,
    patient: Person,
    birth: datetime.date,
    sex: str,
    author: Person,
    organisation: str,
    paragraphs: list[str],
    confidentiality: str = "N",
) -> bytes:
    """A narrative CDA document (letters, reports, notes)."""
    root = _header(
        document_id=document_id,
        type_code=type_code,
        type_name=type_name,
        title=title,
        at=at,
        confidentiality=confidentiality,
        patient_matricule=patient_matricule,
        patient=patient,
        birth=birth,
        sex=sex,
        author=author,
        organisation=organisation,
        templates=(),
    )
    section = _el(_el(_el(_el(root, "component"), "structuredBody"), "component"), "section")
    _el(section, "title", title)
    text = _el(section, "text")
    for paragraph in paragraphs:
        _el(text, "paragraph", paragraph)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + tostring(
        root, encoding="utf-8", xml_declaration=False
    )


EDISPENSATION_TEMPLATE = "1.3.182.11.6.1"


@dataclass(frozen=True)
class DispensedLine:
    medication: str
    code: str
    prescribed: int
    delivered: int
    remaining: int
    unit: str = ""


def dispensation_cda(
    *,
    document_id: str,
    at: datetime.datetime,
    patient_matricule: str,
    patient: Person,
    birth: datetime.date,
    sex: str,
    pharmacist: Person,
    pharmacy: str,
    prescription_id: str,
    lines: list[DispensedLine],
    title: str = "Dispensation de médicaments",
) -> bytes:
    """An eDispensation CDA (``1.3.182.11.6.1``): one dispensed supply entry
    (``1.3.182.11.6.2.3.1``) per line handed over, a narrative grid (prescribed, delivered,
    remaining) and the prescription it fulfils (``inFulfillmentOf``)."""
    root = _header(
        document_id=document_id,
        type_code="60593-1",
        type_name="Medication dispensed.brief",
        title=title,
        at=at,
        confidentiality="N",
        patient_matricule=patient_matricule,
        patient=patient,
        birth=birth,
        sex=sex,
        author=pharmacist,
        organisation=pharmacy,
        templates=(EDISPENSATION_TEMPLATE,),
    )
    root_part, _, extension = prescription_id.rpartition("^")
    _el(
        _el(_el(root, "inFulfillmentOf"), "order"), "id", root=root_part or "1.3.182.2.4", extension=extension
    )
    section = _el(_el(_el(_el(root, "component"), "structuredBody"), "component"), "section")
    _el(
        section,
        "code",
        code="60590-7",
        codeSystem="2.16.840.1.113883.6.1",
        displayName="Medication dispensed",
    )
    _el(section, "title", "Médicaments délivrés")
    text = _el(section, "text")
    _el(text, "paragraph", f"Délivrance par {pharmacy} le {at:%d/%m/%Y %H:%M}.")
    table = _el(text, "table")
    head = _el(_el(table, "thead"), "tr")
    for label in ("Médicament", "Prescrit", "Délivré", "Reste à délivrer"):
        _el(head, "th", label)
    body = _el(table, "tbody")
    for line in lines:
        row = _el(body, "tr")
        _el(row, "td", line.medication)
        for value in (line.prescribed, line.delivered, line.remaining):
            _el(row, "td", f"{value} {line.unit}".strip())
    for line in lines:
        if not line.delivered:
            continue
        supply = _el(_el(section, "entry"), "supply", classCode="SPLY", moodCode="EVN")
        _el(supply, "templateId", root=DISPENSED_SUPPLY_TEMPLATE)
        _el(supply, "effectiveTime", value=ts(at))
        _el(supply, "quantity", value=str(line.delivered), unit=line.unit)
        product = _el(_el(supply, "product"), "manufacturedProduct")
        _el(product, "templateId", root=MEDICINE_TEMPLATE)
        material = _el(product, "manufacturedMaterial")
        _el(material, "code", code=line.code, codeSystem=MEDICINE_CODE_SYSTEM, displayName=line.medication)
        _el(material, "name", line.medication)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + tostring(
        root, encoding="utf-8", xml_declaration=False
    )
