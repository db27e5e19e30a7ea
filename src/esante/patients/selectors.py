"""Reads of the patient index: the search criteria and the search itself.

The search returns identity and administrative data only. It is not access-aware by itself;
the portal calls it through ``esante.access.selectors.patient_search``, which adds the rate
limit, the per-professional columns and the audit.
"""

import datetime
import uuid
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet, Value
from django.db.models.functions import Concat
from django.utils.translation import gettext_lazy as _

from .folding import fold, prefix_upper_bound
from .matricule import validate_patient_matricule
from .models import Patient

MIN_NAME_LETTERS = 2
MIN_FIRST_NAME_LETTERS = 1

CRITERIA_MISSING_MESSAGE = _(
    "Précisez la recherche : saisissez le numéro assuré (matricule), ou un nom d'au moins 2 lettres "
    "avec un prénom (au moins 1 lettre) ou une date de naissance."
)


@dataclass(frozen=True)
class PatientSearchCriteria:
    """Validated search criteria: a 13-digit matricule, and/or folded name prefixes and a birth date."""

    matricule: str = ""
    name: str = ""
    first_name: str = ""
    birth_date: datetime.date | None = None
    #: Sex (``Patient.Sex``) and platform id: only the API searches by them (PDQm ``gender``, ``_id``).
    sex: str = ""
    public_id: uuid.UUID | None = None

    def as_audit_details(self) -> dict[str, str]:
        """The criteria as typed into the trail (folded names, ISO date)."""
        details = {
            "matricule": self.matricule,
            "name": self.name,
            "first_name": self.first_name,
            "birth_date": self.birth_date.isoformat() if self.birth_date else "",
        }
        if self.sex:
            details["sex"] = self.sex
        if self.public_id is not None:
            details["id"] = str(self.public_id)
        return details


def _letters(value: str) -> int:
    return sum(1 for ch in value if ch.isalpha())


def patient_search_criteria(
    *,
    matricule: str = "",
    name: str = "",
    first_name: str = "",
    birth_date: datetime.date | None = None,
    sex: str = "",
    public_id: uuid.UUID | None = None,
) -> PatientSearchCriteria:
    """Checks and normalises search criteria, or raises ``ValidationError`` in French.

    A search needs the matricule (or the platform id), or a name of at least 2 letters together
    with a first name (at least 1 letter) or a birth date: nobody browses the population by
    typing "A". The sex only narrows a search.
    """
    number = validate_patient_matricule(matricule) if matricule.strip() else ""
    folded_name, folded_first = fold(name), fold(first_name)
    if not number and public_id is None:
        if _letters(folded_name) < MIN_NAME_LETTERS:
            raise ValidationError(CRITERIA_MISSING_MESSAGE, code="criteria")
        if _letters(folded_first) < MIN_FIRST_NAME_LETTERS and birth_date is None:
            raise ValidationError(CRITERIA_MISSING_MESSAGE, code="criteria")
    return PatientSearchCriteria(
        matricule=number,
        name=folded_name,
        first_name=folded_first,
        birth_date=birth_date,
        sex=sex,
        public_id=public_id,
    )


def _prefix(column: str, prefix: str) -> Q:
    """A prefix match written as a range, so it is an index range scan on every database."""
    return Q(**{f"{column}__gte": prefix, f"{column}__lt": prefix_upper_bound(prefix)})


#: The order of search results: birth name, first names, then id (all index columns).
SEARCH_ORDER = ("birth_name_folded", "first_names_folded", "pk")


def _rest(criteria: PatientSearchCriteria, *, first_name_column: str = "first_names_folded") -> Q:
    rest = Q()
    if criteria.matricule:
        rest &= Q(matricule=criteria.matricule)
    if criteria.first_name:
        rest &= _prefix(first_name_column, criteria.first_name)
    if criteria.birth_date is not None:
        rest &= Q(birth_date=criteria.birth_date)
    if criteria.sex:
        rest &= Q(sex=criteria.sex)
    if criteria.public_id is not None:
        rest &= Q(public_id=criteria.public_id)
    return rest


def patient_search_parts(criteria: PatientSearchCriteria) -> list[QuerySet[Patient]]:
    """The search result as disjoint parts, each ordered by ``SEARCH_ORDER`` and each one index
    range scan: patients whose birth name matches, then those matching by usage name only.

    Counting and paging the parts separately (and merging the pages) lets the database stop
    after the rows it needs, where one query with OR or UNION must first collect every match
    (measured on PostgreSQL with 1.2 million patients: thousands of matches for a common prefix).
    """
    rest = _rest(criteria)
    if criteria.name:
        by_birth = _prefix("birth_name_folded", criteria.name)
        by_usage = _prefix("usage_name_folded", criteria.name)
        # For the usage-name part, the first-name range is written on an expression so that no
        # planner can serve it from the birth-name index (SQLite chose a skip-scan of that whole
        # index: 250 ms instead of 3 ms on 1.2 million patients); the usage-name range leads.
        usage_rest = _rest(criteria, first_name_column="first_names_unindexed")
        return [
            Patient.objects.filter(rest, by_birth).order_by(*SEARCH_ORDER),
            Patient.objects.alias(first_names_unindexed=Concat("first_names_folded", Value("")))
            .filter(usage_rest, by_usage)
            .exclude(by_birth)
            .order_by(*SEARCH_ORDER),
        ]
    if rest:
        return [Patient.objects.filter(rest).order_by(*SEARCH_ORDER)]
    return []


def patient_search(criteria: PatientSearchCriteria) -> QuerySet[Patient]:
    """Patients matching every given criterion, ordered by birth name, first names, id.

    Matricule: exact. Name: prefix of the birth name or of the usage name, case- and
    accent-insensitive. First name: prefix of the first names. Birth date: exact.
    For pages of results, ``patient_search_parts`` is faster.
    """
    parts = patient_search_parts(criteria)
    if not parts:
        return Patient.objects.none()
    if len(parts) == 1:
        return parts[0]
    ids = parts[0].order_by().values("pk").union(parts[1].order_by().values("pk"))
    return Patient.objects.filter(pk__in=ids).order_by(*SEARCH_ORDER)


def patient_public_id_by_matricule(matricule: str) -> uuid.UUID | None:
    """The platform id of the patient with this matricule, or ``None``. The caller hands it to
    the access gate, which decides (and traces) whether the record may be seen."""
    try:
        matricule = validate_patient_matricule(matricule)
    except ValidationError:
        return None
    return Patient.objects.filter(matricule=matricule).values_list("public_id", flat=True).first()
