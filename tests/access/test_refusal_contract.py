"""The record page under the refusal contract (``tests.refusals``)."""

import pytest

from tests.refusals import Endpoint, PatientScopedRefusalContract, Request


def _record(request: Request) -> str:
    return f"/edocuments/patient/{request.document.patient.public_id}/"


#: A hidden document or one outside the profession's matrix does not close the record: the page
#: opens (and is traced as an opening) without it.
RECORD = Endpoint(
    "record",
    _record,
    "record.open",
    allowed={
        "document_hidden": (200, [("record.open", "success")]),
        "wrong_profession": (200, [("record.open", "success")]),
    },
)
RECORD_PARTIAL = Endpoint(
    "record-partial",
    _record,
    "record.open",
    headers={"HX-Request": "true"},
    allowed={
        "document_hidden": (200, [("record.view", "success")]),
        "wrong_profession": (200, [("record.view", "success")]),
    },
)


class TestRecordRefusals(PatientScopedRefusalContract):
    @pytest.fixture(params=[RECORD, RECORD_PARTIAL], ids=lambda endpoint: endpoint.name)
    def endpoint(self, request: pytest.FixtureRequest) -> Endpoint:
        return request.param  # type: ignore[no-any-return]
