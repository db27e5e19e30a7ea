"""What every route needs: FHIR JSON bodies, POST ``_search`` parameters, the gates, and the
patients a search showed to a token (for ``$declare-access``)."""

import json
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, QueryDict
from django.utils import timezone

from esante.access.gate import RecordGate

from .. import formats
from ..auth import ApiCaller
from ..models import Token
from ..outcome import FhirError, invalid

FOUND_MAX = 500


def record_gate(request: HttpRequest, who: ApiCaller) -> RecordGate:
    assert who.professional is not None  # noqa: S101  (user context checked by ``caller``)
    return RecordGate.for_api(request, who.professional)


def read_json(request: HttpRequest, *, xml: bool = False) -> dict[str, Any]:
    """The request's FHIR JSON body (with ``xml``, a FHIR XML body too, read as its JSON); 415
    for another media type, 400 when it is no JSON object or no FHIR XML resource."""
    media_type = request.content_type or ""
    if xml and media_type in ("application/fhir+xml", "application/xml", "text/xml"):
        try:
            return formats.read_xml(request.body)
        except formats.UnreadableXml:
            raise invalid("invalid-xml", "Le corps n'est pas une ressource FHIR en XML lisible.") from None
    if media_type not in ("application/fhir+json", "application/json"):
        raise FhirError(
            415,
            "unsupported-media-type",
            "Le corps doit être en application/fhir+json" + (" ou application/fhir+xml." if xml else "."),
            issue_type="not-supported",
        )
    raw = request.body
    if b"\x00" in raw or b"\\u0000" in raw.lower():
        raise invalid("invalid-characters", "Le corps contient un caractère nul.")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise invalid("invalid-json", "Le corps n'est pas du JSON valide.") from None
    if not isinstance(body, dict):
        raise invalid("invalid-json", "Le corps doit être un objet JSON (une ressource FHIR).")
    return body


def search_body(request: HttpRequest) -> QueryDict:
    """The parameters of a POST ``_search``: the form-encoded body (FHIR's way), or a
    ``Parameters`` resource with string values (for clients that only send JSON, such as
    fhirpy), added to the query string's. Never from the URL alone: criteria stay out of logs."""
    params = request.GET.copy()
    if request.content_type == "application/x-www-form-urlencoded":
        if "%00" in request.body.decode("latin-1").lower():
            raise invalid("invalid-characters", "Le corps contient un caractère nul.")
        for key in request.POST:
            params.setlist(key, [*params.getlist(key), *request.POST.getlist(key)])
        return params
    if request.content_type not in ("application/fhir+json", "application/json"):
        raise FhirError(
            415,
            "unsupported-media-type",
            "POST _search attend application/x-www-form-urlencoded (ou une ressource Parameters).",
            issue_type="not-supported",
        )
    body = read_json(request)
    if body.get("resourceType") != "Parameters" or not isinstance(body.get("parameter", []), list):
        raise invalid("invalid-resource", "Le corps doit être une ressource Parameters.")
    for parameter in body.get("parameter", []):
        name = parameter.get("name") if isinstance(parameter, dict) else None
        value = parameter.get("valueString") if isinstance(parameter, dict) else None
        if not isinstance(name, str) or not isinstance(value, str):
            raise invalid("invalid-parameter", "Chaque paramètre de recherche a un nom et une valueString.")
        params.appendlist(name, value)
    return params


def remember_found(token: Token, public_ids: list[str]) -> None:
    """Notes the patients a search showed to this token (for ``$declare-access``).

    One conditional UPDATE in the usual case: the list is rewritten only if it is still the one
    read with the token at the start of the request. When a concurrent request of the same token
    changed it meanwhile, the row is locked, read again and merged, so that no patient shown is
    lost."""
    if not public_ids:
        return
    now = int(timezone.now().timestamp())
    window = int(settings.ESANTE_SEARCH_RATE_WINDOW_SECONDS)
    read = token.found_patients
    if Token.objects.filter(pk=token.pk, found_patients=read).update(
        found_patients=_found_merged(read, public_ids, now=now, window=window)
    ):
        return
    with transaction.atomic():
        locked = Token.objects.select_for_update().get(pk=token.pk)
        locked.found_patients = _found_merged(locked.found_patients, public_ids, now=now, window=window)
        locked.save(update_fields=["found_patients"])


def _found_merged(found: dict[str, int], public_ids: list[str], *, now: int, window: int) -> dict[str, int]:
    """``found`` without the entries older than the window, with ``public_ids`` shown ``now``:
    the ``FOUND_MAX`` most recent."""
    kept = {k: v for k, v in found.items() if now - v < window}
    kept.update(dict.fromkeys(public_ids, now))
    return dict(sorted(kept.items(), key=lambda item: item[1], reverse=True)[:FOUND_MAX])


def found_by_search(token: Token, public_id: str) -> bool:
    shown = Token.objects.filter(pk=token.pk).values_list("found_patients", flat=True).first() or {}
    at = shown.get(public_id)
    return at is not None and timezone.now().timestamp() - at < int(
        settings.ESANTE_SEARCH_RATE_WINDOW_SECONDS
    )
