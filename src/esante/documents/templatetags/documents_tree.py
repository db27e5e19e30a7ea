"""``{% tree_documents %}``: the listed documents of one type of the "Vue documentaire".

The tree lists up to 20 documents per type (500 for one type), each line a handful of values; as
template nodes (a variable, a ``date`` filter, an ``if`` per value) those lines were a third of
the page's time. This tag writes the same bytes from Python — the values escaped as ``{{ }}``
escapes them, the time formatted by the ``date`` filter's own function in the active language,
the dispensation status by its template (once per state) — and a test holds it to the template it
replaces. The values are the tree's plain strings: ``html.escape`` is what Django's ``escape``
applies to them, without its lazy-string wrapper.
"""

import datetime
import functools
import html
from typing import Any

from django import template
from django.template.loader import get_template
from django.utils import dateformat, formats, timezone
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext

from esante.documents.selectors import TreeDocument

register = template.Library()


@register.simple_tag(takes_context=True)
def tree_documents(context: template.Context, documents: list[TreeDocument]) -> SafeString:
    """The ``<li>`` lines of ``documents`` (the tree's window of one type), as the template wrote
    them: time, source, title and author; for a prescription its status, and for a pharmacist who
    may dispense (``can_dispense``) the dispense icon unless it is dispensed entirely."""
    escape = html.escape
    prefix = escape(str(context.get("viewer_prefix", "")))
    can_dispense = context.get("can_dispense")
    time_format = _compiled(formats.get_format("SHORT_DATETIME_FORMAT"))
    statuses: dict[str, str] = {}
    lines: list[str] = []
    for document in documents:
        when = escape(_formatted(timezone.localtime(document.clinical_at), time_format))
        link = f"{prefix}{escape(str(document.public_id))}/"
        status = ""
        if document.prescription:
            state = document.prescription.dispensation_state
            if state not in statuses:
                statuses[state] = _status(context, document.prescription)
            status = statuses[state]
            if can_dispense and state != "dispensed":
                hidden = gettext("Marquer comme dispensé : %(title)s du %(date)s") % {
                    "title": escape(document.title),
                    "date": when,
                }
                status += (
                    f'<a class="dispense-icon" href="{link}dispensation/" '
                    f'title="{escape(gettext("Marquer comme dispensé"))}">'
                    f'<span aria-hidden="true">✚</span><span class="visually-hidden">{hidden}</span></a>'
                )
        lines.append(
            f"\n          <li>{status}\n"
            f'            <a href="{link}">{when}</a>\n'
            f'            <span class="doc-meta">{escape(document.source_system)} · '
            f"{escape(document.title)} · {escape(document.author_name)}</span></li>\n"
            "        "
        )
    return mark_safe("".join(lines))  # noqa: S308 - every value above is escaped


@functools.lru_cache(maxsize=64)
def _compiled(format_string: str) -> tuple[tuple[bool, str], ...]:
    """``dateformat.Formatter.format``'s split of a format, done once: (is a format character,
    piece) pairs, the literal pieces already unescaped."""
    pieces = []
    for i, piece in enumerate(dateformat.re_formatchars.split(str(format_string))):
        if i % 2:
            pieces.append((True, piece))
        elif piece:
            pieces.append((False, dateformat.re_escaped.sub(r"\1", piece)))
    return tuple(pieces)


def _formatted(value: datetime.datetime, pieces: tuple[tuple[bool, str], ...]) -> str:
    """``dateformat.format(value, format)`` (what the ``date`` filter calls) for a compiled format."""
    formatter = dateformat.DateFormat(value)
    return "".join(str(getattr(formatter, piece)()) if special else piece for special, piece in pieces)


def _status(context: template.Context, prescription: Any) -> str:
    rendered: str = get_template("documents/_status.html").render(
        {"prescription": prescription}, context.get("request")
    )
    return rendered
