"""SMART scopes: which scope lets a token do what.

A scope names a context (``user``: acting for the professional who consented; ``patient``:
acting for the patient who consented, on their own record only; ``system``: the software
itself), a resource type (or ``*``) and permissions (SMART v2 letters ``cruds``; the v1 suffixes
``read`` and ``write`` are read as ``rs`` and ``cud``). A request needs one scope of the token
with the request's context, resource type and permission letter.
"""

import re
from dataclasses import dataclass

#: The scopes a software client may be registered for.
SUPPORTED_SCOPES = (
    "user/Patient.rs",
    "user/DocumentReference.rs",
    "user/MedicationRequest.rs",
    "user/MedicationDispense.cu",
    "user/Binary.r",
    "user/AuditEvent.rs",
    "patient/AuditEvent.rs",
    "patient/DocumentReference.rs",
    "system/DocumentReference.c",
    "system/Binary.c",
)

_SCOPE = re.compile(
    r"^(?P<context>user|system|patient)/(?P<type>\*|[A-Z][A-Za-z]+)\.(?P<perms>[cruds]+|read|write|\*)$"
)


@dataclass(frozen=True)
class Scope:
    context: str
    resource_type: str
    permissions: frozenset[str]

    def allows(self, *, context: str, resource_type: str, permission: str) -> bool:
        return (
            self.context == context
            and self.resource_type in ("*", resource_type)
            and permission in self.permissions
        )


def parse_scope(text: str) -> Scope | None:
    """The resource scope ``text`` names, or None (``offline_access``, ``openid``, junk)."""
    match = _SCOPE.match(text)
    if match is None:
        return None
    perms = match["perms"]
    letters = {"read": "rs", "write": "cud", "*": "cruds"}.get(perms, perms)
    return Scope(match["context"], match["type"], frozenset(letters))


def scopes_allow(scope_string: str, *, context: str, resource_type: str, permission: str) -> bool:
    """Whether a token's space-separated scopes let it do ``permission`` on ``resource_type``."""
    for text in scope_string.split():
        scope = parse_scope(text)
        if scope is not None and scope.allows(
            context=context, resource_type=resource_type, permission=permission
        ):
            return True
    return False


def scope_contexts(scope_string: str) -> set[str]:
    """The contexts (``user``, ``patient``, ``system``) of the resource scopes in ``scope_string``."""
    return {scope.context for text in scope_string.split() if (scope := parse_scope(text)) is not None}
