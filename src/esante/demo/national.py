"""A synthetic national-scale data set, loaded at bulk speed (``esante simulate_national``).

At scale 1.0: 1.2 million patients, 20 million documents (metadata; every document points to one
shared tiny content file, whose SHA-256 and size it records, so reads pass the integrity check),
4.5 million prescriptions with two lines each, 5 million dispensations, one access grant per
patient and 50 million audit events over the last twelve months. Professionals: 6,000 × scale
(at least 20), a third pharmacists.

Rows go in with ``COPY`` on PostgreSQL and ``executemany`` in one transaction per batch on
SQLite, with explicit primary keys (sequences reset afterwards), bypassing the services: this is
an operator's load of an empty database, not a series of actions. The data is consistent:
valid matricules (``patients.matricule``), every foreign key pointing to a row, prescriptions'
dispensation state and version agreeing with their dispensations (one full delivery, or a
partial then a full one, or none), and an audit trail that is a valid chain: each event's
canonical text, hash, previous hash and MAC are built exactly as ``audit_record`` builds them,
the chain head is set to the last event, and the head is signed (``audit_anchor``), so
``esante verify_audit`` passes on the result; each event names rows of its own patient (a
document read one of that patient's documents, a dispensation event that patient's dispensation
and its pharmacist, a grant event that patient's grant). The Merkle log (``tlog``) is not filled: its
sequencer catches up from the trail when it runs.
"""

import array
import datetime
import hashlib
import hmac
import json
import random
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management.color import no_style
from django.db import connection, transaction
from django.utils import timezone

from esante.access.models import AccessGrant
from esante.accounts.models import Professional, User
from esante.audit.anchoring import audit_anchor
from esante.audit.catalogue import AuditAction
from esante.audit.keys import mac_key
from esante.audit.models import AuditChainHead, AuditEvent
from esante.audit.services import audit_record
from esante.dispensing.models import Dispensation, DispensationLine
from esante.documents.models import Document, Prescription, PrescriptionLine
from esante.documents.types import (
    DEFAULT_BINDER,
    DISPENSATION,
    DOCUMENT_TYPES,
    MEDICATION_PRESCRIPTION,
    Binder,
)
from esante.patients.folding import fold
from esante.patients.matricule import make_patient_matricule
from esante.patients.models import Patient

#: Row counts at scale 1.0.
NATIONAL = {
    "patients": 1_200_000,
    "documents": 20_000_000,
    "prescriptions": 4_500_000,
    "dispensations": 5_000_000,
    "audit_events": 50_000_000,
    "professionals": 6_000,
}
#: Of the prescriptions, these fractions of ``NATIONAL["prescriptions"]`` are dispensed in two
#: deliveries (partial, then full) and in one (full); the rest stay open. 1 M × 2 + 3 M = 5 M.
TWICE, ONCE = 1_000_000 / 4_500_000, 3_000_000 / 4_500_000
BATCH = 20_000
SHARED_CONTENT_NAME = "documents/national/shared.txt"
SHARED_CONTENT = "Document de la simulation nationale (métadonnées seules).\n".encode()

NAMES = (
    (
        "Schmit Muller Weber Wagner Hoffmann Da_Silva Dos_Santos Pereira Gonçalves Ferreira Dupont Martin "
        "Rossi Müller Schneider Klein Thill Kremer Reuter Schroeder Meyer Becker Lentz Kieffer Faber Hansen "
        "Majerus Welter Weis Steffen Schiltz Hermes Frisch Ries Wolff Jacoby Kayser Marx Simon Theis"
    )
    .replace("_", " ")
    .split()
)
GIVEN = "Léa Emma Luc Jean Ana João Marie Paul Sofia Tom Inês Max Noah Lara Ben Mia Léo Zoé Liam Nina".split()
MEDICATIONS = (
    ("Paracétamol 1 g, comprimé", "0012345", "1 comprimé 3 fois par jour", "comprimé"),
    ("Amoxicilline 500 mg, gélule", "0023456", "1 gélule matin et soir pendant 7 jours", "gélule"),
    ("Ibuprofène 400 mg, comprimé", "0034567", "1 comprimé si douleur, 3 par jour au plus", "comprimé"),
    ("Oméprazole 20 mg, gélule", "0045678", "1 gélule le matin", "gélule"),
    ("Metformine 850 mg, comprimé", "0056789", "1 comprimé matin et soir", "comprimé"),
)
#: The synthetic trail's actions, in turn.
ACTIONS = (
    "record.open",
    "record.view",
    "document.read",
    "document.read",
    "patient.search",
    "prescription.dispense",
    "access.grant",
)
#: Who did it, to which patient, on which object (``object_type``, ``object_id``).
Subject = tuple[tuple[int, int, str, str, str], int | None, str, str]


def scaled(scale: float) -> dict[str, int]:
    """The row counts at ``scale`` (at least one patient, one document, 20 professionals)."""
    counts = {name: round(count * scale) for name, count in NATIONAL.items()}
    counts["patients"] = max(counts["patients"], 1)
    counts["documents"] = max(counts["documents"], counts["prescriptions"], 1)
    counts["professionals"] = max(counts["professionals"], 20)
    twice = round(counts["prescriptions"] * TWICE)
    once = round(counts["prescriptions"] * ONCE)
    counts["dispensations"] = 2 * twice + once
    return counts


def holds_data() -> bool:
    """True when the database already holds patients, professionals, documents or audit events."""
    return any(model.objects.exists() for model in (Patient, Professional, Document, AuditEvent))


@dataclass
class LoadReport:
    """Rows written per table and the seconds each took; the seconds the signing of the head took
    (the signer checks every new event first)."""

    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    signing_seconds: float = 0.0


class _Sink:
    """Writes rows to one table: COPY on PostgreSQL, executemany on SQLite."""

    def __init__(self, progress: Callable[[int], None]) -> None:
        self.postgres = connection.vendor == "postgresql"
        self.progress = progress

    def value(self, value: Any) -> Any:
        if self.postgres:
            return value
        if isinstance(value, datetime.datetime):
            return connection.ops.adapt_datetimefield_value(value)
        if isinstance(value, datetime.date):
            return value.isoformat()
        if isinstance(value, uuid.UUID):
            return value.hex
        return value

    def write(self, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> int:
        quote = connection.ops.quote_name
        names = ", ".join(quote(c) for c in columns)
        written = 0
        with connection.cursor() as cursor:
            for batch in _batches(rows):
                with transaction.atomic():
                    if self.postgres:
                        with cursor.cursor.copy(f"COPY {quote(table)} ({names}) FROM STDIN") as copy:
                            for row in batch:
                                copy.write_row(row)
                    else:
                        marks = ", ".join(["%s"] * len(columns))
                        cursor.executemany(
                            f"INSERT INTO {quote(table)} ({names}) VALUES ({marks})",  # noqa: S608 (constants)
                            [tuple(self.value(v) for v in row) for row in batch],
                        )
                written += len(batch)
                self.progress(len(batch))
        return written


def _batches(rows: Iterable[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _derived_uuid(salt: bytes, number: int) -> uuid.UUID:
    """A random-looking UUID that the trail can name again without keeping it in memory."""
    digest = hashlib.blake2b(number.to_bytes(8, "big"), digest_size=16, key=salt).digest()
    return uuid.UUID(bytes=digest, version=4)


def _next_id(model: type[Any]) -> int:
    last = model.objects.order_by("-pk").values_list("pk", flat=True).first()
    return (last or 0) + 1


def _reset_sequences() -> None:
    if connection.vendor != "postgresql":
        return  # SQLite's AUTOINCREMENT follows the largest id inserted
    models = [User, Professional, Patient, Document, Prescription, PrescriptionLine]
    models += [Dispensation, DispensationLine, AccessGrant, AuditEvent]
    with connection.cursor() as cursor:
        for statement in connection.ops.sequence_reset_sql(no_style(), models):
            cursor.execute(statement)


def simulate_national(
    *, scale: float, actor_label: str, seed: int = 1, progress: Callable[[int], None] = lambda n: None
) -> LoadReport:
    """Loads the synthetic data set at ``scale`` and returns the rows and seconds per table.

    Call it on an empty database (``holds_data``); on one that holds data it adds to it, new
    rows numbered after the existing ones and new events chained after the current head. Ends
    with one ``platform.simulation`` event (by ``actor_label``) and a signed head; raises
    ``AnchorRefused`` when the head cannot be signed (the rows stay: the trail is still a chain).
    """
    counts = scaled(scale)
    # The existing rows change the stream: data added with --force gets other identifiers.
    rng = random.Random(seed * 1_000_003 + _next_id(Patient))  # noqa: S311 - synthetic data, not a secret
    now = timezone.now().replace(microsecond=0)
    sink = _Sink(progress)
    report = LoadReport()

    def timed(name: str, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
        started = datetime.datetime.now(datetime.UTC)
        report.rows[name] = sink.write(table, columns, rows)
        report.seconds[name] = (datetime.datetime.now(datetime.UTC) - started).total_seconds()

    # Professionals: few, through the ORM.
    started = datetime.datetime.now(datetime.UTC)
    pros = _professionals(counts["professionals"], rng, now)
    report.rows["professionals"] = len(pros)
    report.seconds["professionals"] = (datetime.datetime.now(datetime.UTC) - started).total_seconds()
    progress(len(pros))
    pharmacists = [p for p in pros if p[2] == "pharmacist"]
    doctors = [p for p in pros if p[2] == "doctor"]

    if not default_storage.exists(SHARED_CONTENT_NAME):
        default_storage.save(SHARED_CONTENT_NAME, ContentFile(SHARED_CONTENT))
    content_sha = hashlib.sha256(SHARED_CONTENT).hexdigest()

    first_patient = _next_id(Patient)
    n_patients = counts["patients"]
    timed(
        "patients",
        Patient._meta.db_table,
        (
            "id public_id matricule birth_name usage_name first_names birth_date sex taux dossier_number "
            "platform_identifier dossier_state alerts birth_name_folded usage_name_folded "
            "first_names_folded created_at updated_at"
        ).split(),
        _patient_rows(rng, first_patient, n_patients, now),
    )

    def patient_of(u: float) -> int:
        # Skewed: a few patients have long records, most short ones.
        return first_patient + min(n_patients - 1, int(n_patients * u**1.5))

    first_document = _next_id(Document)
    n_documents, n_prescriptions = counts["documents"], counts["prescriptions"]
    document_salt, dispensation_salt = rng.randbytes(16), rng.randbytes(16)
    document_patients = array.array("I")  # the patient of each new document, for the trail
    other_types = [code for code in DOCUMENT_TYPES if code not in (MEDICATION_PRESCRIPTION, DISPENSATION)]

    def document_rows() -> Iterator[tuple[Any, ...]]:
        for n in range(n_documents):
            prescription = n < n_prescriptions
            code = MEDICATION_PRESCRIPTION if prescription else other_types[n % len(other_types)]
            doc_type = DOCUMENT_TYPES[code]
            author = (
                (rng.choice(doctors) if doctors else rng.choice(pros)) if prescription else rng.choice(pros)
            )
            patient = patient_of(rng.random())
            document_patients.append(patient)
            clinical = now - datetime.timedelta(minutes=rng.randrange(5 * 365 * 24 * 60))
            if prescription:  # prescriptions within the last three months mostly
                clinical = now - datetime.timedelta(minutes=rng.randrange(120 * 24 * 60))
            yield (
                first_document + n,
                _derived_uuid(document_salt, n),
                patient,
                code,
                str(doc_type.class_code),
                f"{doc_type.label} n° {n + 1}",
                clinical,
                author[0],
                author[3],
                "eServices",
                str(DEFAULT_BINDER.get(doc_type.class_code, Binder.GENERAL)),  # type: ignore[call-overload]
                "N" if rng.random() < 0.95 else "R",
                "text/plain",
                SHARED_CONTENT_NAME,
                content_sha,
                len(SHARED_CONTENT),
                "current",
                False,
                "",
                "",
                clinical + datetime.timedelta(minutes=5),
            )

    timed(
        "documents",
        Document._meta.db_table,
        (
            "id public_id patient_id type_code class_code title clinical_at author_id author_name "
            "source_system binder confidentiality media_type content sha256 size status "
            "hidden_by_patient external_id text_content submitted_at"
        ).split(),
        document_rows(),
    )

    first_prescription = _next_id(Prescription)
    twice = round(n_prescriptions * TWICE)
    once = round(n_prescriptions * ONCE)

    def state(n: int) -> tuple[str, int]:
        return ("dispensed", 2) if n < twice else ("dispensed", 1) if n < twice + once else ("open", 0)

    timed(
        "prescriptions",
        Prescription._meta.db_table,
        "id document_id prescribed_at prescriber_name dispensation_state state_version".split(),
        (
            (
                first_prescription + n,
                first_document + n,
                now - datetime.timedelta(days=n % 90),
                "Dr Prescripteur",
            )
            + state(n)
            for n in range(n_prescriptions)
        ),
    )
    first_line = _next_id(PrescriptionLine)

    def line_rows() -> Iterator[tuple[Any, ...]]:
        for n in range(n_prescriptions):
            for position, quantity in ((1, 2), (2, 1)):
                medication, code, dosage, unit = MEDICATIONS[(n + position) % len(MEDICATIONS)]
                line_id = first_line + 2 * n + position - 1
                yield (line_id, first_prescription + n, position, medication, code, dosage, quantity, unit)

    timed(
        "prescription_lines",
        PrescriptionLine._meta.db_table,
        "id prescription_id position medication medication_code dosage quantity unit".split(),
        line_rows(),
    )

    first_dispensation = _next_id(Dispensation)
    first_dispensation_line = _next_id(DispensationLine)
    n_dispensations = 2 * twice + once

    def delivery(number: int) -> tuple[int, int, str, tuple[int, int], tuple[int, int]]:
        """Dispensation ``number``: its prescription's index, ``based_on_version``, kind, and
        the quantities delivered and remaining on the two lines (prescribed: 2 and 1). The first
        ``twice`` prescriptions get a partial then a full delivery, the next ``once`` a full one."""
        if number < 2 * twice:
            if number % 2 == 0:
                return number // 2, 0, "partial", (1, 1), (1, 0)
            return number // 2, 1, "full", (1, 0), (0, 0)
        return number - twice, 0, "full", (2, 1), (0, 0)

    def dispensation_rows() -> Iterator[tuple[Any, ...]]:
        for number in range(n_dispensations):
            n, version, kind, _, _ = delivery(number)
            pharmacist = pharmacists[(n + version) % len(pharmacists)]
            yield (
                first_dispensation + number,
                _derived_uuid(dispensation_salt, number),
                first_prescription + n,
                pharmacist[0],
                pharmacist[3],
                "Pharmacie du Globe",
                now - datetime.timedelta(days=n % 90, hours=-version - 1),
                kind,
                version,
                None,
                None,
                None,
                "",
            )

    timed(
        "dispensations",
        Dispensation._meta.db_table,
        (
            "id public_id prescription_id pharmacist_id pharmacist_name pharmacy dispensed_at kind "
            "based_on_version document_id withdrawn_at withdrawn_by_id withdrawal_reason"
        ).split(),
        dispensation_rows(),
    )
    timed(
        "dispensation_lines",
        DispensationLine._meta.db_table,
        (
            "id dispensation_id prescription_line_id quantity_prescribed quantity_delivered "
            "quantity_remaining"
        ).split(),
        (
            (
                first_dispensation_line + 2 * number + line,
                first_dispensation + number,
                first_line + 2 * step[0] + line,
                (2, 1)[line],
                step[3][line],
                step[4][line],
            )
            for number in range(n_dispensations)
            for step in (delivery(number),)
            for line in (0, 1)
        ),
    )

    first_grant = _next_id(AccessGrant)
    grant_pros = doctors or pros
    timed(
        "access_grants",
        AccessGrant._meta.db_table,
        (
            "id professional_id patient_id mode motif conditions_version granted_at expires_at revoked_at "
            "revoked_reason"
        ).split(),
        (
            (
                first_grant + n,
                grant_pros[n % len(grant_pros)][0],
                first_patient + n,
                "care",
                "Suivi médical",
                "",
                now - datetime.timedelta(days=n % 300),
                now + datetime.timedelta(days=65 - n % 300)
                if n % 300 < 60
                else now - datetime.timedelta(days=1),
                None,
                "",
            )
            for n in range(n_patients)
        ),
    )

    anyone = [*pros]

    def subject(action: str) -> Subject:
        """The actor, patient and object of an event: the rows the event speaks of, so that a
        patient's journal names that patient's own documents, grants and dispensations."""
        if action == "document.read":
            number = rng.randrange(n_documents)
            document = str(_derived_uuid(document_salt, number))
            return rng.choice(anyone), document_patients[number], "document", document
        if action == "prescription.dispense" and n_dispensations:
            number = rng.randrange(n_dispensations)
            n, version, _, _, _ = delivery(number)
            pharmacist = pharmacists[(n + version) % len(pharmacists)]
            dispensation = str(_derived_uuid(dispensation_salt, number))
            return pharmacist, document_patients[n], "Dispensation", dispensation
        if action == "access.grant":
            n = rng.randrange(n_patients)
            return grant_pros[n % len(grant_pros)], first_patient + n, "AccessGrant", str(first_grant + n)
        if action == "patient.search":
            return rng.choice(anyone), None, "", ""
        return rng.choice(anyone), patient_of(rng.random()), "", ""

    head = AuditChainHead.objects.get(pk=1)
    first_sequence = head.sequence + 1
    last: list[Any] = [head.sequence, head.hash]
    started = datetime.datetime.now(datetime.UTC)
    report.rows["audit_events"] = sink.write(
        AuditEvent._meta.db_table,
        (
            "sequence created_at actor_id actor_label action outcome patient_id object_type object_id motif "
            "client_address details canonical prev_hash hash mac"
        ).split(),
        _audit_rows(rng, counts["audit_events"], first_sequence, head.hash, now, subject, last),
    )
    AuditChainHead.objects.filter(pk=1).update(sequence=last[0], hash=last[1])
    report.seconds["audit_events"] = (datetime.datetime.now(datetime.UTC) - started).total_seconds()
    _reset_sequences()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    # The load itself is traced (after the synthetic events, chained to them), then signed: the
    # signer re-checks the whole new stretch of the chain first (its own rule), which is timed.
    started = datetime.datetime.now(datetime.UTC)
    audit_record(
        action=AuditAction.SIMULATION_LOAD,
        actor_label=actor_label,
        details={"scale": scale, "seed": seed, "rows": report.rows},
    )
    audit_anchor(initial=first_sequence == 1)
    report.signing_seconds = (datetime.datetime.now(datetime.UTC) - started).total_seconds()
    return report


def _professionals(
    count: int, rng: random.Random, now: datetime.datetime
) -> list[tuple[int, int, str, str, str]]:
    """Creates the professionals (users and rows); returns (id, user id, profession, name, matricule)."""
    taken = set(Professional.objects.values_list("matricule", flat=True))
    taken |= set(User.objects.values_list("username", flat=True))
    professions = ["doctor", "pharmacist", "doctor", "pharmacist", "nurse", "doctor"]
    created: list[tuple[int, int, str, str, str]] = []
    while len(created) < count:
        batch: list[tuple[str, str, str, str]] = []
        while len(batch) < min(2_000, count - len(created)):
            birth = datetime.date(1950, 1, 1) + datetime.timedelta(days=rng.randrange(18_000))
            matricule = make_patient_matricule(birth, rng.randrange(1000))
            if matricule in taken:
                continue
            taken.add(matricule)
            profession = professions[(len(created) + len(batch)) % len(professions)]
            batch.append((matricule, profession, rng.choice(NAMES), rng.choice(GIVEN)))
        users = User.objects.bulk_create(
            [User(username=m, first_name=g, last_name=n, date_joined=now) for m, _, n, g in batch]
        )
        pros = Professional.objects.bulk_create(
            [
                Professional(
                    user=user,
                    matricule=m,
                    profession=p,
                    last_name=n,
                    first_name=g,
                    email=f"{m}@pro.example.lu",
                    organisation="Pharmacie du Globe" if p == "pharmacist" else "Cabinet médical",
                    state="active",
                )
                for user, (m, p, n, g) in zip(users, batch, strict=True)
            ]
        )
        created += [
            (pro.pk, pro.user_id, pro.profession, f"{pro.first_name} {pro.last_name}", pro.matricule)
            for pro in pros
        ]
    return created


def _patient_rows(
    rng: random.Random, first: int, count: int, now: datetime.datetime
) -> Iterator[tuple[Any, ...]]:
    taken = set(Patient.objects.values_list("matricule", flat=True))
    start = datetime.date(1925, 1, 1)
    for n in range(count):
        while True:
            birth = start + datetime.timedelta(days=rng.randrange(36_500))
            matricule = make_patient_matricule(birth, rng.randrange(1000))
            if matricule not in taken:
                taken.add(matricule)
                break
        name = rng.choice(NAMES) + ("" if rng.random() < 0.8 else f"-{rng.choice(NAMES)}")
        usage = rng.choice(NAMES) if rng.random() < 0.15 else ""
        given = rng.choice(GIVEN)
        yield (
            first + n,
            uuid.UUID(int=rng.getrandbits(128), version=4),
            matricule,
            name,
            usage,
            given,
            birth,
            "F" if n % 2 else "M",
            (40, 80, 80, 100)[n % 4],
            "",
            f"9{first + n:010d}",
            "active",
            "",
            fold(name),
            fold(usage),
            fold(given),
            now,
            now,
        )


def _audit_rows(
    rng: random.Random,
    count: int,
    first_sequence: int,
    previous: str,
    now: datetime.datetime,
    subject: Callable[[str], Subject],
    head: list[Any],
) -> Iterator[tuple[Any, ...]]:
    """Chained events, built as ``audit_record`` builds them (canonical text, hash, MAC);
    ``head`` is set to the last event's sequence and hash as they go."""
    key = mac_key()
    sha256, digest_of, quote = hashlib.sha256, hmac.digest, json.encoder.encode_basestring
    span = 365 * 24 * 3600 * 1_000_000  # the last twelve months, in microseconds
    start = now - datetime.timedelta(microseconds=span)
    step = span // max(count, 1)
    details, details_json = {"channel": "portal"}, '{"channel":"portal"}'
    for n in range(count):
        sequence = first_sequence + n
        created_at = start + datetime.timedelta(microseconds=n * step + rng.randrange(max(step, 1)))
        action = ACTIONS[n % len(ACTIONS)]
        actor, patient, object_type, object_id = subject(action)
        actor_label = actor[4]  # the user's username, as ``audit_record`` writes it
        address = f"192.0.2.{n % 250 + 1}"
        time_text = created_at.astimezone(datetime.UTC).isoformat()
        # Exactly ``canonical_bytes`` of the payload ``audit_record`` builds (sorted keys, no spaces).
        canonical = (
            f'{{"action":{quote(action)},"actor":{actor[1]},"actor_label":{quote(actor_label)},'
            f'"client_address":{quote(address)},"details":{details_json},"motif":{quote("")},'
            f'"object_id":{quote(object_id)},"object_type":{quote(object_type)},"outcome":"success",'
            f'"patient":{"null" if patient is None else patient},"prev":{quote(previous)},'
            f'"seq":{sequence},"time":{quote(time_text)}}}'
        )
        digest = sha256(canonical.encode("utf-8")).hexdigest()
        mac = digest_of(key, digest.encode("ascii"), "sha256").hex()
        yield (
            sequence,
            created_at,
            actor[1],
            actor_label,
            action,
            "success",
            patient,
            object_type,
            object_id,
            "",
            address,
            json.dumps(details),
            canonical,
            previous,
            digest,
            mac,
        )
        previous = digest
        head[:] = [sequence, digest]
