"""The journal's table, written in Python: fifty rows through the template engine cost more
than everything else on the page (``benchmarks/patient_journal.py``)."""

from django import template
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext

from ..selectors import JournalLine

register = template.Library()


def _who(line: JournalLine, via: str) -> SafeString:
    parts = [format_html("{}", line.who)]
    if line.who_detail:
        parts.append(format_html("<br><small>{}</small>", line.who_detail))
    if line.software:
        parts.append(format_html("<br><small>{} {}</small>", via, line.software))
    return SafeString("".join(parts))


def _logged(line: JournalLine, words: str) -> SafeString:
    if line.logged is None:
        return SafeString("")
    url = reverse("espace:journal_entry", kwargs={"sequence": line.event.sequence})
    return format_html('<br><small><a href="{}">{}</a></small>', url, words % {"size": line.logged[1]})


def _what(line: JournalLine, emergency: str, logged: str) -> SafeString:
    parts = []
    if line.emergency:
        parts.append(format_html('<strong class="badge">{}</strong> ', emergency))
    parts.append(format_html("{}", line.what))
    if line.subject:
        parts.append(format_html(" : {}", line.subject))
    if line.refused:
        parts.append(format_html(" <em>({})</em>", line.outcome))
    parts.append(_logged(line, logged))
    return SafeString("".join(parts))


@register.simple_tag
def journal_rows(lines: list[JournalLine]) -> SafeString:
    via, emergency = gettext("via le logiciel"), gettext("Accès en urgence")
    logged = gettext("vérifié dans le journal public, point de contrôle %(size)s")
    return format_html_join(
        "\n",
        "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                SafeString(' class="emergency"') if line.emergency else "",
                formats.date_format(timezone.localtime(line.when), "SHORT_DATETIME_FORMAT"),
                _who(line, via),
                _what(line, emergency, logged),
                line.motif,
            )
            for line in lines
        ),
    )
