"""The public log's read-only HTTP face (``/journal/``, no login): the latest signed checkpoint,
the verifier key, tiles and entry bundles (C2SP tlog-tiles), and inclusion and consistency
proofs as JSON. Nothing served here names a person: leaves are salted commitments
(``tlog.leaf``). These reads are not audited: they carry no personal data, and an event per read
would feed the log with its own readers."""

import base64
import struct

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe

from esante.audit.keys import MissingKeyError, verification_public_key

from . import note, tiles
from .models import LogLeaf
from .selectors import consistency_proof_for, inclusion_proof_for, latest_checkpoint, published_size
from .storage import tile_bytes

IMMUTABLE = "public, max-age=31536000, immutable"
FRESH = "public, max-age=5"


def _text(body: str, cache: str) -> HttpResponse:
    response = HttpResponse(body, content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = cache
    return response


@require_safe
def checkpoint(request: HttpRequest) -> HttpResponse:
    """The latest signed checkpoint, with the witness's cosignature once it has given it."""
    latest = latest_checkpoint()
    if latest is None:
        raise Http404("no checkpoint yet")
    return _text(latest.published, FRESH)


@require_safe
def verifier_key(request: HttpRequest) -> HttpResponse:
    """The checkpoints' verifier key (``name+keyid+key``); a verifier should hold its own copy,
    obtained out of band, and compare."""
    try:
        public = verification_public_key()
    except (MissingKeyError, ValueError):
        raise Http404("no signing key yet") from None
    return _text(note.verifier_key(settings.TLOG_ORIGIN, public) + "\n", FRESH)


def _width(width: int | None) -> int:
    if width is None:
        return tiles.TILE_WIDTH
    if not 1 <= width < tiles.TILE_WIDTH:
        raise Http404("bad partial tile width")
    return width


def _index(index: str) -> int:
    try:
        value = tiles.parse_index(index)
    except ValueError:
        raise Http404("malformed tile index") from None
    if value >= 1 << 54:  # beyond any tree a 64-bit size can hold
        raise Http404("no such tile")
    return value


def _binary(data: bytes, width: int) -> HttpResponse:
    response = HttpResponse(data, content_type="application/octet-stream")
    response["Cache-Control"] = IMMUTABLE if width == tiles.TILE_WIDTH else FRESH
    return response


@require_safe
def tile(request: HttpRequest, level: int, index: str, width: int | None = None) -> HttpResponse:
    """``tile/<L>/<N>[.p/<W>]``: the first W hashes (256 for a full tile) of tile L/N."""
    count = _width(width)
    data = tile_bytes(level, _index(index), count) if level < 64 else None
    if data is None:
        raise Http404("no such tile")
    return _binary(data, count)


@require_safe
def entries(request: HttpRequest, index: str, width: int | None = None) -> HttpResponse:
    """``tile/entries/<N>[.p/<W>]``: the entries (commitments) of leaves 256N ... 256N + W - 1,
    each prefixed with its length as a big-endian uint16."""
    count = _width(width)
    first = _index(index) * tiles.TILE_WIDTH
    if first + count > published_size():
        raise Http404("no such entry bundle")
    commitments = LogLeaf.objects.filter(index__gte=first, index__lt=first + count).order_by("index")
    data = b"".join(
        struct.pack(">H", 32) + bytes(c) for c in commitments.values_list("commitment", flat=True)
    )
    return _binary(data, count)


class _BadQuery(ValueError):
    pass


def _number(request: HttpRequest, name: str, default: int | None = None) -> int:
    raw = request.GET.get(name)
    if raw is None and default is not None:
        return default
    if raw is None or not raw.isdigit() or len(raw) > 19:
        raise _BadQuery(f"'{name}' must be a non-negative integer")
    return int(raw)


def _error(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _encode(proof: list[bytes]) -> list[str]:
    return [base64.b64encode(node).decode() for node in proof]


@require_safe
def inclusion(request: HttpRequest) -> JsonResponse:
    """``proof/inclusion?index=I&size=N`` (N defaults to the latest checkpoint's size)."""
    try:
        index = _number(request, "index")
        size = _number(request, "size", published_size())
        proof = inclusion_proof_for(index, size)
    except ValueError as exc:
        return _error(str(exc))
    return JsonResponse({"index": index, "size": size, "proof": _encode(proof)})


@require_safe
def consistency(request: HttpRequest) -> JsonResponse:
    """``proof/consistency?from=M&to=N`` (N defaults to the latest checkpoint's size)."""
    try:
        old = _number(request, "from")
        size = _number(request, "to", published_size())
        if old == 0:
            raise _BadQuery("nothing to prove from the empty tree")
        proof = consistency_proof_for(old, size)
    except ValueError as exc:
        return _error(str(exc))
    return JsonResponse({"from": old, "to": size, "proof": _encode(proof)})
