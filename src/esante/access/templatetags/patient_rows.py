"""The rows of the patient lists (search results, "Mes patients", "Mes derniers dossiers").

A list shows up to 100 rows of fourteen cells; written as template tags, each row cost as much
as the rest of the page (a dozen translations, a URL and three dates looked up and escaped per
row). ``patient_rows`` writes the same bytes in Python: the labels translated once a list, each
value rendered and escaped as the template engine does (``render_value_in_context``), the
dates through the ``date`` filter in local time. ``tests/access/test_patient_rows.py`` holds it to
the template it replaces, byte for byte.
"""

from collections.abc import Iterable
from typing import Any

from django import template
from django.template.base import render_value_in_context
from django.template.context import Context
from django.template.defaultfilters import date as date_filter
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe
from django.utils.timezone import template_localtime  # type: ignore[attr-defined]
from django.utils.translation import gettext

register = template.Library()

_ROW = (
    "\n    \n    <tr>\n"
    "      <td>{birth_name}</td>\n"
    "      <td>{usage_name}</td>\n"
    '      <td><a href="{open_url}">{name}</a></td>\n'
    "      <td>{first_names}</td>\n"
    "      <td>{birth_date}</td>\n"
    "      <td>{sex}</td>\n"
    "      <td>{matricule}</td>\n"
    "      <td>{taux}%</td>\n"
    "      <td>{dossier_number}</td>\n"
    "      <td>{platform_identifier}</td>\n"
    "      <td>{state}</td>\n"
    "      <td>\n        {closed}\n        {opposed}\n        {blocked}\n        {emergency}\n      </td>\n"
    '      <td><a href="{open_url}">{action}</a></td>\n'
    "      <td>\n        {opened}\n        {until}\n      </td>\n"
    "    </tr>\n  "
)


@register.simple_tag(takes_context=True)
def patient_rows(context: Context, patients: Iterable[Any]) -> SafeString:
    """The ``<tr>`` rows of ``patients`` (with the lists' per-professional columns)."""

    def value(item: object) -> str:
        return str(render_value_in_context(item, context))

    def label(text: str) -> str:  # as ``{% translate "..." %}`` writes a literal: as translated
        return gettext(text)

    def alert(text: str) -> str:
        return f'<span class="alert">{label(text)}</span>'

    def when(moment: Any, format_name: str) -> str:
        return value(date_filter(template_localtime(moment, context.use_tz), format_name))

    sexes = {
        "F": f'<span title="{label("Féminin")}">♀</span>',
        "M": f'<span title="{label("Masculin")}">♂</span>',
    }
    other_sex = f'<span title="{label("Autre")}">⚥</span>'
    active = f'<span class="state-active" title="{label("Actif")}">●</span>'
    closed, opposed = alert("Dossier fermé"), alert("Opposition du patient")
    blocked, emergency = alert("Accès refusé par le patient"), alert("Accès en urgence en cours")
    open_record, ask_access = label("Ouvrir le dossier"), label("Demander l'accès")
    # ``{% blocktranslate %}`` writes its translation as it is and escapes the values it is given.
    opened_text = gettext("Dernière ouverture : %(opened)s")
    until_text = gettext("Accès jusqu'au %(until)s")
    rows = []
    for patient in patients:
        access_until = getattr(patient, "my_access_until", None)
        last_opening = getattr(patient, "my_last_opening", None)
        state = patient.dossier_state
        open_url = reverse("documents:record" if access_until else "access:dialog", args=[patient.public_id])
        rows.append(
            _ROW.format(
                birth_name=value(patient.birth_name.upper()),
                usage_name=value(patient.usage_name.upper()),
                open_url=value(open_url),
                name=value((patient.usage_name or patient.birth_name).upper()),
                first_names=value(patient.first_names),
                birth_date=value(date_filter(patient.birth_date, "SHORT_DATE_FORMAT")),
                sex=sexes.get(patient.sex, other_sex),
                matricule=value(patient.matricule),
                taux=value(patient.taux),
                dossier_number=value(patient.dossier_number),
                platform_identifier=value(patient.platform_identifier),
                state=active if state == "active" else value(patient.get_dossier_state_display()),
                closed=closed if state == "closed" else "",
                opposed=opposed if state == "opposed" else "",
                blocked=blocked if getattr(patient, "blocked_me", False) else "",
                emergency=emergency if getattr(patient, "emergency_in_progress", False) else "",
                action=open_record if access_until else ask_access,
                opened=opened_text % {"opened": when(last_opening, "SHORT_DATETIME_FORMAT")} + "<br>"
                if last_opening
                else "",
                until=until_text % {"until": when(access_until, "SHORT_DATETIME_FORMAT")}
                if access_until
                else "",
            )
        )
    return mark_safe("".join(rows))  # noqa: S308 - every value above is escaped
