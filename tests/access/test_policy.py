import datetime

import pytest
from django.test import override_settings

from esante.access import policy
from esante.access.models import AccessGrant
from esante.access.policy import Confidentiality, DocumentClass
from esante.accounts.models import Profession

N, R, V = Confidentiality.NORMAL, Confidentiality.RESTRICTED, Confidentiality.VERY_RESTRICTED


def read(
    profession: str, class_code: str, level: str, *, author: bool = False, referring: bool = False
) -> bool:
    return policy.may_read_document_class(
        profession, class_code, level, is_author=author, is_referring_doctor=referring
    )


def test_pharmacist_reads_prescriptions_and_medication_not_psychiatry() -> None:
    assert read(Profession.PHARMACIST, DocumentClass.PRESCRIPTION, N)
    assert read(Profession.PHARMACIST, DocumentClass.MEDICATION, N)
    assert not read(Profession.PHARMACIST, DocumentClass.PSYCHIATRY, N)
    assert not read(Profession.PHARMACIST, DocumentClass.LABORATORY, N)


@pytest.mark.parametrize("profession", Profession.values)
@pytest.mark.parametrize("class_code", DocumentClass.values)
def test_matrix_each_profession_each_class_each_level(profession: str, class_code: str) -> None:
    in_matrix = class_code in policy.DEFAULT_MATRIX[profession]
    assert read(profession, class_code, N) is in_matrix
    # R: only the author and the patient's médecin référent (within the matrix).
    assert read(profession, class_code, R) is False
    assert read(profession, class_code, R, referring=True) is in_matrix
    assert read(profession, class_code, R, author=True) is True
    # V: only the author.
    assert read(profession, class_code, V) is False
    assert read(profession, class_code, V, referring=True) is False
    assert read(profession, class_code, V, author=True) is True


def test_unknown_profession_and_unknown_level_read_nothing() -> None:
    assert policy.readable_classes("astrologer") == frozenset()
    assert not read("astrologer", DocumentClass.PRESCRIPTION, N)
    assert not read(Profession.DOCTOR, DocumentClass.PRESCRIPTION, "X", referring=True)


@override_settings(ESANTE_ACCESS_MATRIX={"pharmacist": ["prescription", "laboratory"]})
def test_matrix_is_configurable() -> None:
    assert read(Profession.PHARMACIST, DocumentClass.LABORATORY, N)
    assert not read(Profession.PHARMACIST, DocumentClass.MEDICATION, N)


@pytest.mark.parametrize("mode", AccessGrant.Mode.values)
def test_hidden_document_only_for_its_author(mode: str) -> None:
    common = {
        "mode": mode,
        "profession": Profession.DOCTOR,
        "class_code": "prescription",
        "confidentiality": N,
    }
    assert not policy.may_read_document(
        **common, is_author=False, is_referring_doctor=True, hidden_by_patient=True
    )
    assert policy.may_read_document(
        **common, is_author=True, is_referring_doctor=False, hidden_by_patient=True
    )


def test_own_documents_mode_reads_only_authored_documents() -> None:
    common = {"profession": Profession.DOCTOR, "class_code": "prescription", "confidentiality": N}
    mode = AccessGrant.Mode.OWN_DOCUMENTS
    assert not policy.may_read_document(
        mode=mode, **common, is_author=False, is_referring_doctor=False, hidden_by_patient=False
    )
    assert policy.may_read_document(
        mode=mode, **common, is_author=True, is_referring_doctor=False, hidden_by_patient=False
    )


def test_no_mode_reads_nothing() -> None:
    assert not policy.may_read_document(
        mode="",
        profession=Profession.DOCTOR,
        class_code="prescription",
        confidentiality=N,
        is_author=False,
        is_referring_doctor=True,
        hidden_by_patient=False,
    )


def test_emergency_never_lifts_restricted_levels() -> None:
    common = {"mode": AccessGrant.Mode.EMERGENCY, "profession": Profession.DOCTOR, "class_code": "report"}
    assert not policy.may_read_document(
        **common, confidentiality=R, is_author=False, is_referring_doctor=False, hidden_by_patient=False
    )
    assert not policy.may_read_document(
        **common, confidentiality=V, is_author=False, is_referring_doctor=True, hidden_by_patient=False
    )


def test_only_pharmacists_dispense() -> None:
    assert [p for p in Profession.values if policy.may_dispense(p)] == ["pharmacist"]


def test_emergency_professions() -> None:
    assert {p for p in Profession.values if policy.may_use_emergency_access(p)} == {
        "doctor",
        "nurse",
        "midwife",
    }


def test_default_durations() -> None:
    assert policy.access_duration("pharmacist") == datetime.timedelta(hours=24)
    assert policy.access_duration("doctor") == datetime.timedelta(days=183)
    assert policy.access_duration("unknown") == datetime.timedelta(hours=24)
    assert policy.emergency_duration() == datetime.timedelta(hours=2)


@override_settings(ESANTE_ACCESS_HOURS={"pharmacist": 48}, ESANTE_ACCESS_EMERGENCY_HOURS=1)
def test_durations_are_configurable() -> None:
    assert policy.access_duration("pharmacist") == datetime.timedelta(hours=48)
    assert policy.access_duration("doctor") == datetime.timedelta(days=183)
    assert policy.emergency_duration() == datetime.timedelta(hours=1)
