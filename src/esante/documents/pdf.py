"""Inspecting submitted PDFs for active content before they are filed.

A PDF may carry code or actions that a reader runs on its own: JavaScript (``/JavaScript``,
``/JS``), an action run on opening (``/OpenAction`` holding an action rather than a plain
destination), additional actions triggered by events (``/AA``, on the catalog, pages,
annotations and form fields), launching a program (``/Launch``), embedded files
(``/EmbeddedFile``, ``/EmbeddedFiles``, a file specification's ``/EF``), XFA forms (which carry
scripts) and rich media (``/RichMedia``). A clinical document needs none of these, so a PDF
holding any of them is refused at ingestion, with the constructs found named in the refusal.

The document is parsed with pypdf. Every object is visited, not only the catalog, pages,
annotations, forms and name trees: the whole graph reachable from the trailer (the catalog's
``/OpenAction``, ``/AA``, ``/Names`` trees, ``/AcroForm`` fields, page ``/Annots`` with their
``/A`` and ``/AA``, outlines, chained ``/Next`` actions) and every object listed in the
cross-reference tables, reachable or not, since another reader may rebuild the file differently.
A PDF that cannot be parsed, or that is encrypted with a password we do not have, cannot be
inspected and is refused too.
"""

import io
import logging
from dataclasses import dataclass

from pypdf import PdfReader
from pypdf.errors import PdfReadError
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, NameObject, PdfObject

# Findings, in the order they are named in the refusal.
JAVASCRIPT = "JavaScript"
OPEN_ACTION = "action à l'ouverture (/OpenAction)"
ADDITIONAL_ACTIONS = "actions automatiques (/AA)"
LAUNCH = "lancement de programme (/Launch)"
EMBEDDED_FILE = "fichier incorporé (/EmbeddedFile)"
XFA = "formulaire XFA"
RICH_MEDIA = "contenu multimédia (/RichMedia)"
_ORDER = (JAVASCRIPT, OPEN_ACTION, ADDITIONAL_ACTIONS, LAUNCH, EMBEDDED_FILE, XFA, RICH_MEDIA)

# A dictionary key that is active content wherever it appears.
_KEYS = {
    "/JS": JAVASCRIPT,
    "/JavaScript": JAVASCRIPT,  # the name tree of document-level scripts
    "/AA": ADDITIONAL_ACTIONS,
    "/EmbeddedFiles": EMBEDDED_FILE,  # the name tree of embedded files
    "/EF": EMBEDDED_FILE,  # a file specification's embedded file streams
    "/XFA": XFA,
    "/RichMediaContent": RICH_MEDIA,
    "/RichMediaSettings": RICH_MEDIA,
}
# A name value that is active content: an action's /S, a stream's or annotation's /Type or /Subtype.
_NAMES = {
    "/JavaScript": JAVASCRIPT,
    "/Launch": LAUNCH,
    "/EmbeddedFile": EMBEDDED_FILE,
    "/FileAttachment": EMBEDDED_FILE,
    "/GoToE": EMBEDDED_FILE,  # go to an embedded document
    "/RichMedia": RICH_MEDIA,
    "/RichMediaExecute": RICH_MEDIA,
}
_NAME_KEYS = ("/S", "/Type", "/Subtype")

# pypdf logs a warning for each flaw it repairs in a damaged file ("EOF marker not found"), into
# the operator's import report; the verdict is ours to give (a refusal naming the reason), so
# only its errors are let through. pypdf is read nowhere else in the product.
logging.getLogger("pypdf").setLevel(logging.ERROR)


class PdfRefused(Exception):
    """The PDF carries active content or cannot be inspected; ``str(exc)`` says why, in French."""


@dataclass(frozen=True)
class PdfInspection:
    """What the inspection found (empty when the PDF is clean)."""

    findings: tuple[str, ...]


def inspect(content: bytes) -> PdfInspection:
    """Parses ``content`` and lists the active content it carries (see the module docstring).

    Raises ``PdfRefused`` when the PDF cannot be parsed or is protected by a password.
    """
    try:
        reader = PdfReader(io.BytesIO(content), strict=False)
        if reader.is_encrypted and not _opens_without_password(reader):
            raise PdfRefused(
                "document PDF refusé : il est protégé par un mot de passe, "
                "son contenu ne peut pas être contrôlé"
            )
        found = _walk(reader)
    except PdfRefused:
        raise
    except Exception:
        # pypdf raises many kinds of errors on broken input (PdfReadError, ValueError, KeyError,
        # RecursionError on deep nesting, ...); none of them lets us vouch for the file.
        raise PdfRefused("document PDF refusé : fichier PDF illisible ou endommagé") from None
    return PdfInspection(tuple(finding for finding in _ORDER if finding in found))


def check(content: bytes) -> None:
    """Raises ``PdfRefused`` naming the active content found, or when the PDF cannot be inspected."""
    findings = inspect(content).findings
    if findings:
        raise PdfRefused(f"document PDF refusé : il contient du contenu actif ({', '.join(findings)})")


def _opens_without_password(reader: PdfReader) -> bool:
    """Encrypted with an empty user password (restrictions only): every reader opens it, so can we."""
    try:
        return bool(reader.decrypt(""))
    except (PdfReadError, NotImplementedError, ValueError):
        return False


def _walk(reader: PdfReader) -> set[str]:
    found: set[str] = set()
    seen: set[tuple[int, int]] = set()
    stack: list[PdfObject] = [reader.trailer]
    # Objects listed in the cross-reference tables, whether the trailer reaches them or not.
    # Streams are not decoded (only object streams, to read the objects they hold), and pypdf caps
    # what a compressed stream may expand to (75 MB, ``pypdf.filters``).
    for generation, numbers in reader.xref.items():
        stack.extend(IndirectObject(number, generation, reader) for number in numbers)
    stack.extend(IndirectObject(number, 0, reader) for number in reader.xref_objStm)
    while stack:
        item = stack.pop()
        if isinstance(item, IndirectObject):
            key = (item.idnum, item.generation)
            if key in seen:
                continue
            seen.add(key)
            resolved = item.get_object()
            if resolved is None:
                continue
            item = resolved
        if isinstance(item, DictionaryObject):
            _check_dictionary(item, found)
            stack.extend(item.values())
        elif isinstance(item, ArrayObject):
            stack.extend(item)
    return found


def _check_dictionary(dictionary: DictionaryObject, found: set[str]) -> None:
    for key in dictionary:
        if key in _KEYS:
            found.add(_KEYS[key])
    for key in _NAME_KEYS:
        value = dictionary.get(key)
        if isinstance(value, IndirectObject):
            value = value.get_object()
        if isinstance(value, NameObject) and value in _NAMES:
            found.add(_NAMES[value])
    if "/OpenAction" in dictionary:
        # A destination (an array: page and view) only opens the document at a page; a
        # dictionary is an action, run on opening.
        if isinstance(dictionary["/OpenAction"].get_object(), DictionaryObject):
            found.add(OPEN_ACTION)
