"""The document viewer and the raw content under the refusal contract (``tests.refusals``)."""

import pytest

from tests.refusals import Endpoint, PatientScopedRefusalContract, Request


def _document(request: Request) -> str:
    return f"/edocuments/patient/{request.patient.public_id}/document/{request.document.public_id}/"


VIEWER = Endpoint("viewer", _document, "document.read")
CONTENT = Endpoint("content", lambda request: _document(request) + "contenu", "document.content")


class TestDocumentRefusals(PatientScopedRefusalContract):
    @pytest.fixture(params=[VIEWER, CONTENT], ids=lambda endpoint: endpoint.name)
    def endpoint(self, request: pytest.FixtureRequest) -> Endpoint:
        return request.param  # type: ignore[no-any-return]
