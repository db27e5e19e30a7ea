"""The journal's tab (its filter bar, export links, table and « Accès plus anciens » link),
written in Python: fifty rows, four form widgets and a dozen translated labels through the
template engine cost more than everything else on the page (``benchmarks/patient_journal.py``).
Every value is escaped here, once."""

import html
import urllib.parse
from collections.abc import Iterable, Sequence

from django import template
from django.urls import reverse
from django.utils import dateformat, formats, timezone
from django.utils.safestring import SafeString
from django.utils.translation import gettext

from esante.accounts.models import Professional

from ..selectors import JournalLine, JournalPage, journal_kind_labels, profession_labels, professional_label

register = template.Library()


def escape(value: object) -> str:
    """Django's ``escape`` without its lazy-string wrapper (the values here are plain strings,
    a few hundred a page): the same characters replaced, as ``html.escape`` does for Django."""
    return html.escape(str(value))


#: Format characters of Django's date syntax that strftime writes the same in every language.
_STRFTIME = {"d": "%d", "m": "%m", "Y": "%Y", "y": "%y", "H": "%H", "i": "%M", "s": "%S"}


def _strftime_pattern(django_format: str) -> str | None:
    """``django_format`` as a strftime pattern when it holds only numeric fields (« d/m/Y H:i »),
    else None (month names and the like stay with Django's formatter)."""
    pattern = []
    for char in django_format:
        if char in _STRFTIME:
            pattern.append(_STRFTIME[char])
        elif char.isalpha() or char == "\\":
            return None
        else:
            pattern.append(char.replace("%", "%%"))
    return "".join(pattern)


def _options(choices: Iterable[tuple[str, str]], selected: str) -> str:
    return "".join(
        f'<option value="{escape(value)}"{" selected" if value == selected else ""}>{escape(label)}</option>'
        for value, label in choices
    )


@register.simple_tag
def journal_filter_fields(
    form: object, data: dict[str, str], professionals: Sequence[Professional]
) -> SafeString:
    """The four filters (« Du », « Au », « Type », « Professionnel »), with the values asked for
    and, on a refused value, the form's own error list above the field."""
    errors = getattr(form, "errors", None) or {}
    everyone = gettext("Tous")
    kinds = [("", everyone)] + list(journal_kind_labels().items())
    labels = profession_labels()
    people = [("", everyone)] + [(p.matricule, professional_label(p, labels)) for p in professionals]
    parts = []
    for name, label, control in (
        ("du", gettext("Du"), None),
        ("au", gettext("Au"), None),
        ("type", gettext("Type"), kinds),
        ("professionnel", gettext("Professionnel"), people),
    ):
        value = data.get(name, "")
        parts.append(f'<label for="id_{name}">{escape(label)}</label>')
        if name in errors:
            parts.append(str(errors[name]))
        if control is None:
            parts.append(f'<input type="date" name="{name}" id="id_{name}" value="{escape(value)}">')
        else:
            parts.append(f'<select name="{name}" id="id_{name}">{_options(control, value)}</select>')
    return SafeString("".join(parts))


@register.simple_tag
def journal_tab(page: JournalPage, form: object, asked: dict[str, str], query: dict[str, str]) -> SafeString:
    """The journal's tab: the title, the filters, the exports and the page's lines (or that
    there are none), and the link to the older ones that keeps the filters."""
    # The filters in the export links, as the page was asked (``urlencode`` quotes every value).
    filters = escape(f"?{urllib.parse.urlencode(query)}") if query else ""
    parts = [
        "<h2>{}</h2>\n".format(escape(gettext("Mon journal d'accès"))),
        "<p>{}</p>\n".format(
            escape(
                gettext(
                    "Chaque accès à votre dossier et chaque action sur celui-ci, "
                    "du plus récent au plus ancien."
                )
            )
        ),
        '<form method="get" class="filters">\n  ',
        journal_filter_fields(form, asked, page.professionals),
        f'\n  <button type="submit" class="button">{escape(gettext("Filtrer"))}</button>\n</form>\n',
        '<p class="exports"><a href="{}{}">{}</a> · <a href="{}{}">{}</a></p>\n'.format(
            reverse("espace:journal_csv"),
            filters,
            escape(gettext("Exporter (CSV)")),
            reverse("espace:journal_pdf"),
            filters,
            escape(gettext("Exporter (PDF)")),
        ),
    ]
    if not page.lines:
        parts.append(f"<p>{escape(gettext('Aucun événement pour ces critères.'))}</p>")
        return SafeString("".join(parts))
    headings = "".join(
        f'<th scope="col">{escape(label)}</th>'
        for label in (gettext("Date"), gettext("Qui"), gettext("Action"), gettext("Motif"))
    )
    parts.append(
        f'<table class="journal">\n  <thead><tr>{headings}</tr></thead>\n'
        f"  <tbody>{journal_rows(page.lines)}</tbody>\n</table>\n"
    )
    if page.next_before:
        older = urllib.parse.urlencode({**query, "avant": page.next_before})
        parts.append(
            f'<p><a class="button secondary" href="?{escape(older)}">'
            f"{escape(gettext('Accès plus anciens'))}</a></p>"
        )
    return SafeString("".join(parts))


@register.simple_tag
def journal_rows(lines: list[JournalLine]) -> SafeString:
    """The table's rows. A page's fifty lines share a few actors, actions and motifs: each
    distinct cell is escaped and assembled once."""
    via = escape(gettext("via le logiciel"))
    emergency = '<strong class="badge">{}</strong> '.format(escape(gettext("Accès en urgence")))
    logged = gettext("vérifié dans le journal public, point de contrôle %(size)s")
    cosigned = gettext("vérifié dans le journal public, point de contrôle %(size)s, cosigné par le témoin")
    entry = reverse("espace:journal_entry", kwargs={"sequence": 0})[: -len("0/")]
    when_format = formats.get_format("SHORT_DATETIME_FORMAT")
    when_pattern = _strftime_pattern(when_format)
    zone = timezone.get_current_timezone()
    whos: dict[tuple[str, str, str], str] = {}
    whats: dict[tuple[bool, str, str, bool, str], str] = {}
    motifs: dict[str, str] = {}
    proofs: dict[tuple[bool, int], str] = {}
    rows = []
    for line in lines:
        key = (line.who, line.who_detail, line.software)
        who = whos.get(key)
        if who is None:
            who = escape(line.who)
            if line.who_detail:
                who += f"<br><small>{escape(line.who_detail)}</small>"
            if line.software:
                who += f"<br><small>{via} {escape(line.software)}</small>"
            whos[key] = who
        shown = (line.emergency, line.what, line.subject, line.refused, line.outcome)
        what = whats.get(shown)
        if what is None:
            what = (emergency if line.emergency else "") + escape(line.what)
            if line.subject:
                what += f" : {escape(line.subject)}"
            if line.refused:
                what += f" <em>({escape(line.outcome)})</em>"
            whats[shown] = what
        if line.logged is not None and line.sequence is not None:
            proof = (line.cosigned, line.logged[1])
            if proof not in proofs:
                proofs[proof] = escape((cosigned if line.cosigned else logged) % {"size": line.logged[1]})
            what += f'<br><small><a href="{entry}{line.sequence}/">{proofs[proof]}</a></small>'
        motif = motifs.get(line.motif)
        if motif is None:
            motif = motifs[line.motif] = escape(line.motif)
        local = line.when.astimezone(zone)
        when = local.strftime(when_pattern) if when_pattern else dateformat.format(local, when_format)
        opening = '<tr class="emergency">' if line.emergency else "<tr>"
        rows.append(f"{opening}<td>{escape(when)}</td><td>{who}</td><td>{what}</td><td>{motif}</td></tr>")
    return SafeString("\n".join(rows))
