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
import io
import json
import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from django.core.exceptions import ValidationError

from .matricule import birth_date_of, patient_matricule_birth_date, validate_patient_matricule
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
# A row's validated values (``normalise_fields``), in this order: the CSV columns', converted
# (the birth date a ``date``, the taux an ``int``, no platform identifier ``None``).
VALUE_COLUMNS = CSV_COLUMNS
Fields = tuple[str, ...]
Values = tuple[Any, ...]
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


class _CountingReader(io.RawIOBase):
    """The binary file as a raw stream that reports each chunk's size (the progress bar): the
    text layer above it reads large chunks, so the callback runs per chunk, not per line."""

    def __init__(self, binary: IO[bytes], on_bytes: Callable[[int], None]) -> None:
        super().__init__()
        self._binary = binary
        self._on_bytes = on_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._binary.read(len(buffer))
        count = len(data)
        buffer[:count] = data
        if count:
            self._on_bytes(count)
        return count


def _text(binary: IO[bytes], on_bytes: Callable[[int], None]) -> io.TextIOWrapper:
    """UTF-8 text of the file (a byte-order mark dropped, invalid bytes as U+FFFD), newlines kept
    as they are for the CSV reader."""
    counting = io.BufferedReader(_CountingReader(binary, on_bytes), buffer_size=1 << 16)
    return io.TextIOWrapper(counting, encoding="utf-8-sig", errors="replace", newline="")


def read_csv(binary: IO[bytes], on_bytes: Callable[[int], None]) -> Iterator[tuple[int, Fields | RowError]]:
    """Yields ``(line, fields)``: the row's values stripped, in ``CSV_COLUMNS`` order (``""`` for a
    column the file lacks), or ``(line, RowError)``."""
    text = _text(binary, on_bytes)
    header_line = text.readline()
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    header = [column.strip().lower() for column in next(csv.reader([header_line], delimiter=delimiter), [])]
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    unknown = [column for column in header if column not in CSV_COLUMNS]
    if missing or unknown:
        raise FileFormatError(
            "en-tête CSV invalide"
            + (f" ; colonnes manquantes : {', '.join(missing)}" if missing else "")
            + (f" ; colonnes inconnues : {', '.join(unknown)}" if unknown else "")
        )
    width = len(header)
    # A column the file lacks reads the empty string appended after the row's own values.
    in_order = operator.itemgetter(*(header.index(c) if c in header else width for c in CSV_COLUMNS))
    matricule_at = header.index("matricule")
    reader = csv.reader(text, delimiter=delimiter)
    for values in reader:
        line = reader.line_num + 1  # the header is line 1
        if len(values) != width:
            if not any(value.strip() for value in values):
                continue
            yield line, RowError(f"{len(values)} colonnes au lieu de {width}")
            continue
        stripped = [value.strip() for value in values]
        if not any(stripped):
            continue
        if "\ufffd" in "".join(values):
            yield line, RowError("encodage invalide (UTF-8 attendu)", stripped[matricule_at])
            continue
        stripped.append("")
        yield line, in_order(stripped)


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
) -> Iterator[tuple[int, Fields | RowError]]:
    """Yields ``(line, fields)`` as ``read_csv`` does, one FHIR Patient per line."""
    for line, text in enumerate(_text(binary, on_bytes), start=1):
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
            row = fhir_patient_to_row(resource)
        except ValidationError as exc:
            yield line, RowError(exc.messages[0])
            continue
        yield line, tuple(row.get(column, "").strip() for column in CSV_COLUMNS)


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


def normalise_fields(fields: Fields) -> Values:
    """Validated values of one row given in ``CSV_COLUMNS`` order, as a tuple in ``VALUE_COLUMNS``
    order; raises ValidationError with a French reason.

    Plain tuples, no dictionary: this runs once per row of a population file.
    """
    (
        matricule,
        birth_name,
        usage_name,
        first_names,
        birth_text,
        sex_text,
        taux_text,
        dossier_number,
        identifier,
        state,
    ) = fields
    if not (matricule and birth_name and first_names and birth_text and sex_text):
        empty = next(c for c in REQUIRED_COLUMNS if not fields[CSV_COLUMNS.index(c)])
        raise ValidationError("champ obligatoire vide : %(c)s", params={"c": empty})
    try:
        birth_date = patient_matricule_birth_date(matricule)
    except ValidationError:
        try:
            matricule = validate_patient_matricule(matricule)  # spaces, dots: its compact form
        except ValidationError as exc:
            raise ValidationError(f"matricule : {exc.messages[0]}") from None
        birth_date = birth_date_of(matricule)
    # The usual form, YYYY-MM-DD, compared as text with the matricule's first eight digits.
    if (
        not (
            len(birth_text) == 10
            and birth_text[4] == birth_text[7] == "-"
            and birth_text[:4] == matricule[:4]
            and birth_text[5:7] == matricule[4:6]
            and birth_text[8:] == matricule[6:8]
        )
        and _parse_date(birth_text) != birth_date
    ):
        raise ValidationError("la date de naissance ne correspond pas à celle du matricule")
    sex = sex_text.upper()
    if sex not in _SEXES:
        raise ValidationError("sexe « %(v)s » invalide (F, M ou X)", params={"v": sex_text})
    taux = _TAUX.get(taux_text or "80")
    if taux is None:
        taux = _TAUX.get(taux_text.rstrip("%").strip())
        if taux is None:
            raise ValidationError("taux « %(v)s » invalide (40, 80 ou 100)", params={"v": taux_text})
    state = state or "active"
    if state not in _DOSSIER_STATES:
        raise ValidationError(
            "état de dossier « %(v)s » invalide (active, closed, opposed)", params={"v": state}
        )
    if len(birth_name) > 100 or len(usage_name) > 100 or len(first_names) > 150:
        for column, value, limit in (
            ("birth_name", birth_name, 100),
            ("usage_name", usage_name, 100),
            ("first_names", first_names, 150),
        ):
            if len(value) > limit:
                raise ValidationError(
                    "%(c)s trop long (%(n)d caractères au plus)", params={"c": column, "n": limit}
                )
    for column, value in (("dossier_number", dossier_number), ("platform_identifier", identifier)):
        if value and (len(value) > 20 or not value.isalnum()):
            raise ValidationError("%(c)s invalide", params={"c": column})
    return (
        matricule,
        birth_name,
        usage_name,
        first_names,
        birth_date,
        sex,
        taux,
        dossier_number,
        identifier or None,
        state,
    )


def normalise(row: dict[str, str]) -> dict[str, Any]:
    """Validated model values for one row given as a dictionary (``normalise_fields``' checks);
    ``platform_identifier`` only when the row has one."""
    values = dict(
        zip(
            VALUE_COLUMNS,
            normalise_fields(tuple((row.get(column) or "").strip() for column in CSV_COLUMNS)),
            strict=True,
        )
    )
    if values["platform_identifier"] is None:
        del values["platform_identifier"]
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
