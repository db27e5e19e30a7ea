"""Reading patient files for ``esante import_patients``: CSV and FHIR R4 Patient NDJSON.

Both readers stream the file line by line (constant memory) and yield ``(line_number, fields)``
or ``(line_number, RowError)``; ``normalise`` turns the raw fields into validated model values.

CSV header (comma or semicolon separated, UTF-8)::

    matricule,birth_name,usage_name,first_names,birth_date,sex,taux,dossier_number,platform_identifier,dossier_state

``birth_date`` is ``YYYY-MM-DD`` or ``DD/MM/YYYY``; ``sex`` is ``F``, ``M`` or ``X``; ``taux`` is
40, 80 or 100 (default 80); ``usage_name``, ``dossier_number``, ``platform_identifier`` (generated
when empty) and ``dossier_state`` (``active``, ``closed``, ``opposed``; default ``active``) may be empty.

FHIR NDJSON: one ``Patient`` resource per line. The matricule is the identifier with system
``urn:oid:1.3.182.4.4``; the name with ``use`` ``official`` is the birth name, ``usual`` the usage
name; ``gender`` female/male/other/unknown; ``birthDate``; identifiers with systems
``urn:esante:dossier-number`` and ``urn:esante:platform-identifier``; the extension
``urn:esante:taux`` (``valueInteger``).
"""

import csv
import datetime
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from django.core.exceptions import ValidationError

from .matricule import birth_date_of, validate_patient_matricule
from .models import Patient

CSV_COLUMNS = (
    "matricule",
    "birth_name",
    "usage_name",
    "first_names",
    "birth_date",
    "sex",
    "taux",
    "dossier_number",
    "platform_identifier",
    "dossier_state",
)
REQUIRED_COLUMNS = ("matricule", "birth_name", "first_names", "birth_date", "sex")
MATRICULE_SYSTEM = "urn:oid:1.3.182.4.4"
DOSSIER_SYSTEM = "urn:esante:dossier-number"
IDENTIFIER_SYSTEM = "urn:esante:platform-identifier"
TAUX_EXTENSION = "urn:esante:taux"
_FHIR_GENDER = {"female": "F", "male": "M", "other": "X", "unknown": "X"}
# Built once: a choices enum's ``values`` is rebuilt at each access.
_SEXES = frozenset(Patient.Sex.values)
_DOSSIER_STATES = frozenset(Patient.DossierState.values)
_TAUX = {"40": 40, "80": 80, "100": 100}


@dataclass(frozen=True)
class RowError:
    reason: str
    matricule: str = ""


class FileFormatError(Exception):
    """The file as a whole cannot be read (missing columns, unknown format)."""


def _lines(binary: IO[bytes], on_bytes: Callable[[int], None]) -> Iterator[str]:
    first = True
    for raw in binary:
        on_bytes(len(raw))
        text = raw.decode("utf-8", errors="replace")
        if first:
            text = text.removeprefix("\ufeff")
            first = False
        yield text


def read_csv(
    binary: IO[bytes], on_bytes: Callable[[int], None]
) -> Iterator[tuple[int, dict[str, str] | RowError]]:
    lines = _lines(binary, on_bytes)
    header_line = next(lines, "")
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    header = [column.strip().lower() for column in next(csv.reader([header_line], delimiter=delimiter))]
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    unknown = [column for column in header if column not in CSV_COLUMNS]
    if missing or unknown:
        raise FileFormatError(
            "en-tête CSV invalide"
            + (f" ; colonnes manquantes : {', '.join(missing)}" if missing else "")
            + (f" ; colonnes inconnues : {', '.join(unknown)}" if unknown else "")
        )
    reader = csv.reader(lines, delimiter=delimiter)
    for values in reader:
        line = reader.line_num + 1  # the header is line 1
        if not any(value.strip() for value in values):
            continue
        if len(values) != len(header):
            yield line, RowError(f"{len(values)} colonnes au lieu de {len(header)}")
            continue
        row = dict(zip(header, (value.strip() for value in values), strict=True))
        if any("\ufffd" in value for value in values):
            yield line, RowError("encodage invalide (UTF-8 attendu)", row.get("matricule", ""))
            continue
        yield line, row


def _names(resource: dict[str, Any]) -> tuple[str, str, str]:
    birth = usage = given = ""
    for name in resource.get("name") or []:
        family = name.get("family") or ""
        use = name.get("use") or "official"
        if use in ("official", "maiden") and not birth:
            birth = family
            given = " ".join(name.get("given") or []) or given
        elif use == "usual":
            usage = family
            given = given or " ".join(name.get("given") or [])
    return birth, usage, given


def fhir_patient_to_row(resource: dict[str, Any]) -> dict[str, str]:
    if resource.get("resourceType") != "Patient":
        raise ValidationError(
            "ressource FHIR de type « %(t)s » au lieu de Patient", params={"t": resource.get("resourceType")}
        )
    row: dict[str, str] = {}
    for identifier in resource.get("identifier") or []:
        system, value = identifier.get("system"), str(identifier.get("value") or "")
        if system == MATRICULE_SYSTEM:
            row["matricule"] = value
        elif system == DOSSIER_SYSTEM:
            row["dossier_number"] = value
        elif system == IDENTIFIER_SYSTEM:
            row["platform_identifier"] = value
    row["birth_name"], row["usage_name"], row["first_names"] = _names(resource)
    row["birth_date"] = str(resource.get("birthDate") or "")
    gender = str(resource.get("gender") or "")
    row["sex"] = _FHIR_GENDER.get(gender, gender)
    for extension in resource.get("extension") or []:
        if extension.get("url") == TAUX_EXTENSION:
            row["taux"] = str(extension.get("valueInteger", ""))
    return row


def read_ndjson(
    binary: IO[bytes], on_bytes: Callable[[int], None]
) -> Iterator[tuple[int, dict[str, str] | RowError]]:
    for line, text in enumerate(_lines(binary, on_bytes), start=1):
        if not text.strip():
            continue
        if "\ufffd" in text:
            yield line, RowError("encodage invalide (UTF-8 attendu)")
            continue
        try:
            resource = json.loads(text)
            if not isinstance(resource, dict):
                raise ValueError("not an object")
        except ValueError:
            yield line, RowError("JSON invalide")
            continue
        try:
            yield line, fhir_patient_to_row(resource)
        except ValidationError as exc:
            yield line, RowError(exc.messages[0])


def _parse_date(value: str) -> datetime.date:
    if len(value) == 10 and value[4] == value[7] == "-" and value.isascii():
        try:
            return datetime.date.fromisoformat(value)  # the usual form, without strptime's cost
        except ValueError:
            pass
    for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.datetime.strptime(value, fmt).date()  # noqa: DTZ007 - a date, no time zone
        except ValueError:
            continue
    raise ValidationError(
        "date de naissance « %(v)s » invalide (AAAA-MM-JJ ou JJ/MM/AAAA)", params={"v": value}
    )


def normalise(row: dict[str, str]) -> dict[str, Any]:
    """Validated model values for one row; raises ValidationError with a French reason."""
    for column in REQUIRED_COLUMNS:
        if not row.get(column):
            raise ValidationError("champ obligatoire vide : %(c)s", params={"c": column})
    try:
        matricule = validate_patient_matricule(row["matricule"])
    except ValidationError as exc:
        raise ValidationError(f"matricule : {exc.messages[0]}") from None
    birth_date = _parse_date(row["birth_date"])
    if birth_date != birth_date_of(matricule):
        raise ValidationError("la date de naissance ne correspond pas à celle du matricule")
    sex = row["sex"].upper()
    if sex not in _SEXES:
        raise ValidationError("sexe « %(v)s » invalide (F, M ou X)", params={"v": row["sex"]})
    taux_text = row.get("taux") or "80"
    taux = _TAUX.get(taux_text.rstrip("%").strip())
    if taux is None:
        raise ValidationError("taux « %(v)s » invalide (40, 80 ou 100)", params={"v": taux_text})
    state = row.get("dossier_state") or "active"
    if state not in _DOSSIER_STATES:
        raise ValidationError(
            "état de dossier « %(v)s » invalide (active, closed, opposed)", params={"v": state}
        )
    for column, limit in (("birth_name", 100), ("usage_name", 100), ("first_names", 150)):
        if len(row.get(column) or "") > limit:
            raise ValidationError(
                "%(c)s trop long (%(n)d caractères au plus)", params={"c": column, "n": limit}
            )
    for column in ("dossier_number", "platform_identifier"):
        value = row.get(column) or ""
        if value and (len(value) > 20 or not value.isalnum()):
            raise ValidationError("%(c)s invalide", params={"c": column})
    values: dict[str, Any] = {
        "matricule": matricule,
        "birth_name": row["birth_name"],
        "usage_name": row.get("usage_name") or "",
        "first_names": row["first_names"],
        "birth_date": birth_date,
        "sex": sex,
        "taux": taux,
        "dossier_number": row.get("dossier_number") or "",
        "dossier_state": state,
    }
    if row.get("platform_identifier"):
        values["platform_identifier"] = row["platform_identifier"]
    return values


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
