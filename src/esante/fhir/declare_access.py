"""The ``$declare-access`` operation's ``Parameters`` <-> the access dialog's answers. No rules
here: the access gate decides (``RecordGate.grant``)."""

from dataclasses import dataclass
from typing import Any

from esante.access.models import AccessGrant

from .outcome import invalid

MODES: dict[str, str] = {"care": AccessGrant.Mode.CARE, "own-documents": AccessGrant.Mode.OWN_DOCUMENTS}


@dataclass(frozen=True)
class AccessDeclaration:
    mode: str
    motif: str
    conditions_accepted: bool


def _values(body: dict[str, Any]) -> dict[str, Any]:
    if body.get("resourceType") != "Parameters" or not isinstance(body.get("parameter", []), list):
        raise invalid("invalid-resource", "Le corps doit être une ressource Parameters.")
    values: dict[str, Any] = {}
    for parameter in body.get("parameter", []):
        if not isinstance(parameter, dict) or not isinstance(parameter.get("name"), str):
            raise invalid("invalid-resource", "Chaque paramètre doit avoir un nom.")
        value = [v for k, v in parameter.items() if k.startswith("value")]
        if len(value) != 1 or parameter["name"] in values:
            raise invalid("invalid-parameter", f"Le paramètre « {parameter['name']} » est invalide.")
        values[parameter["name"]] = value[0]
    unknown = set(values) - {"motif", "mode", "conditionsAccepted", "emergency"}
    if unknown:
        raise invalid("unknown-parameter", f"Paramètre inconnu : {', '.join(sorted(unknown))}.")
    return values


def from_parameters(body: dict[str, Any]) -> AccessDeclaration:
    """The declaration of a ``Parameters`` body: ``mode`` (care / own-documents), ``motif``,
    ``conditionsAccepted``, ``emergency`` (breaks the glass; needs a detailed motif)."""
    values = _values(body)
    motif = values.get("motif", "")
    accepted = values.get("conditionsAccepted", False)
    emergency = values.get("emergency", False)
    if not isinstance(motif, str) or not isinstance(accepted, bool) or not isinstance(emergency, bool):
        raise invalid(
            "invalid-parameter", "motif est un texte ; conditionsAccepted et emergency des booléens."
        )
    if emergency:
        mode: str = AccessGrant.Mode.EMERGENCY
    else:
        code = values.get("mode", "care")
        if code not in MODES:
            raise invalid("invalid-mode", "Le mode doit être « care » ou « own-documents ».")
        mode = MODES[code]
    return AccessDeclaration(mode=mode, motif=motif, conditions_accepted=accepted)


def to_parameters(grant: AccessGrant) -> dict[str, Any]:
    """The opened access: its mode and until when it lasts."""
    mode = {v: k for k, v in MODES.items()}.get(grant.mode, "emergency")
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "mode", "valueCode": mode},
            {"name": "granted", "valueDateTime": grant.granted_at.isoformat()},
            {"name": "expires", "valueDateTime": grant.expires_at.isoformat()},
        ],
    }
