"""The dispensing pages under the refusal contract (``tests.refusals``): "Marquer comme
dispensé" (page and form), the withdrawal (page and form) and the certified copy."""

import pytest

from tests.refusals import Endpoint, PatientScopedRefusalContract, Request


def _dispense(request: Request) -> str:
    return (
        f"/edocuments/patient/{request.patient.public_id}/document/{request.document.public_id}/dispensation/"
    )


def _withdraw(request: Request) -> str:
    return f"{_dispense(request)}{request.dispensation.public_id}/retrait/"


def _copy(request: Request) -> str:
    return f"{_dispense(request)}{request.dispensation.public_id}/copie-certifiee.pdf"


#: Only a pharmacist dispenses; only the pharmacist who recorded a dispensation withdraws it.
DISPENSE_PAGE = Endpoint("dispense-page", _dispense, "document.read", wrong_profession="doctor")
DISPENSE = Endpoint(
    "dispense",
    _dispense,
    "prescription.dispense",
    method="post",
    data={"kind": "full", "state_version": 1},
    wrong_profession="doctor",
)
WITHDRAW_PAGE = Endpoint("withdraw-page", _withdraw, "document.read", wrong_profession="doctor")
WITHDRAW = Endpoint(
    "withdraw",
    _withdraw,
    "dispensation.withdraw",
    method="post",
    data={"reason": "Erreur de saisie"},
    wrong_profession="doctor",
)
COPY = Endpoint("certified-copy", _copy, "dispensation.copy")


class TestDispensingRefusals(PatientScopedRefusalContract):
    @pytest.fixture(
        params=[DISPENSE_PAGE, DISPENSE, WITHDRAW_PAGE, WITHDRAW, COPY], ids=lambda endpoint: endpoint.name
    )
    def endpoint(self, request: pytest.FixtureRequest) -> Endpoint:
        return request.param  # type: ignore[no-any-return]
