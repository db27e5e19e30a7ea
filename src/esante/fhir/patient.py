"""Patient <-> FHIR ``Patient`` (IHE PDQm): the mapping and the search parameters. No rules here."""

import datetime
import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.http import QueryDict

from esante.patients.models import Patient
from esante.patients.selectors import PatientSearchCriteria, patient_search_criteria

from .outcome import FhirError, invalid

MATRICULE_SYSTEM = "urn:oid:1.3.182.4.4"
PLATFORM_SYSTEM = "urn:esante:patient"
GENDERS = {Patient.Sex.FEMALE: "female", Patient.Sex.MALE: "male", Patient.Sex.OTHER: "other"}
SEXES = {gender: sex for sex, gender in GENDERS.items()}
SEARCH_PARAMETERS = {
    "_id",
    "identifier",
    "family",
    "given",
    "birthdate",
    "gender",
    "_count",
    "_page",
    "_format",
}


def to_resource(patient: Patient, base: str) -> dict[str, Any]:
    """The PDQm Patient of an index entry: matricule, names, sex, birth date."""
    names = [{"use": "official", "family": patient.birth_name, "given": patient.first_names.split()}]
    if patient.usage_name:
        names.append({"use": "usual", "family": patient.usage_name, "given": patient.first_names.split()})
    return {
        "resourceType": "Patient",
        "id": str(patient.public_id),
        "identifier": [
            {"use": "official", "system": MATRICULE_SYSTEM, "value": patient.matricule},
            {"use": "secondary", "system": PLATFORM_SYSTEM, "value": patient.platform_identifier},
        ],
        "active": patient.dossier_state == Patient.DossierState.ACTIVE,
        "name": names,
        "gender": GENDERS.get(patient.sex, "unknown"),  # type: ignore[call-overload]
        "birthDate": patient.birth_date.isoformat(),
    }


def _single(params: QueryDict, name: str) -> str:
    values = params.getlist(name)
    if len(values) > 1:
        raise invalid("repeated-parameter", f"Le paramètre « {name} » ne peut être donné qu'une fois.")
    return values[0].strip() if values else ""


def matricule_of(identifier: str) -> str:
    """The matricule of a ``urn:oid:1.3.182.4.4|M`` token (or a bare ``M``)."""
    system, bar, value = identifier.rpartition("|")
    if not bar:
        system, value = "", identifier
    if system not in ("", MATRICULE_SYSTEM):
        raise invalid("unknown-identifier-system", f"Système d'identifiant non pris en charge : {system}.")
    if not value:
        raise invalid("identifier-value-missing", "Le numéro (matricule) de l'identifiant est vide.")
    return value


def search_criteria(params: QueryDict) -> PatientSearchCriteria:
    """The PDQm parameters as the patient index's criteria; ``FhirError`` (400) when invalid."""
    for name in params:
        base = name.split(":")[0]
        if base not in SEARCH_PARAMETERS or (":" in name and name not in ("family:exact", "given:exact")):
            raise invalid("unknown-parameter", f"Paramètre de recherche non pris en charge : {name}.")
    birth_date = None
    if birthdate := _single(params, "birthdate"):
        try:
            birth_date = datetime.date.fromisoformat(birthdate.removeprefix("eq"))
        except ValueError:
            raise invalid(
                "invalid-birthdate", "La date de naissance doit être au format AAAA-MM-JJ."
            ) from None
    sex = ""
    if gender := _single(params, "gender"):
        if gender not in SEXES:
            raise invalid("invalid-gender", "Le sexe doit être female, male ou other.")
        sex = SEXES[gender]
    public_id = None
    if identifier := _single(params, "_id"):
        try:
            public_id = uuid.UUID(identifier)
        except ValueError:
            raise invalid("invalid-id", "L'identifiant « _id » n'est pas valide.") from None
    family = _single(params, "family") or _single(params, "family:exact")
    given = _single(params, "given") or _single(params, "given:exact")
    matricule = matricule_of(_single(params, "identifier")) if "identifier" in params else ""
    try:
        return patient_search_criteria(
            matricule=matricule,
            name=family,
            first_name=given,
            birth_date=birth_date,
            sex=sex,
            public_id=public_id,
        )
    except ValidationError as error:
        raise FhirError(400, "search-criteria", " ".join(error.messages), issue_type="invalid") from None


def page_parameters(params: QueryDict, *, default: int, maximum: int) -> tuple[int, int]:
    """``_count`` (1..maximum) and ``_page`` (1..); ``FhirError`` (400) when not numbers."""
    try:
        count = int(_single(params, "_count") or default)
        page = int(_single(params, "_page") or 1)
    except ValueError:
        raise invalid("invalid-paging", "« _count » et « _page » doivent être des nombres entiers.") from None
    if count < 1 or page < 1:
        raise invalid("invalid-paging", "« _count » et « _page » doivent être positifs.")
    return min(count, maximum), page
