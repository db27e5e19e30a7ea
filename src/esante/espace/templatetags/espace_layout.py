"""The patients' portal's heading (who the record is, for whom one acts, the tabs, the logout
button), written in Python: on every page of the portal, two dozen template nodes cost more than
what they show (``benchmarks/patient_journal.py``). Every value is escaped here, once."""

import html
from typing import Any

from django import template
from django.template.context import Context
from django.urls import reverse
from django.utils.safestring import SafeString
from django.utils.translation import gettext

register = template.Library()


def _escape(value: object) -> str:
    return html.escape(str(value))


def _csrf_input(context: Context) -> str:
    """What ``{% csrf_token %}`` writes."""
    token = context.get("csrf_token")
    if not token or str(token) == "NOTPROVIDED":
        return ""
    return f'<input type="hidden" name="csrfmiddlewaretoken" value="{_escape(token)}">'


@register.simple_tag(takes_context=True)
def espace_heading(context: Context) -> SafeString:
    account: Any = context.get("account")
    tab = context.get("tab")
    csrf = _csrf_input(context)
    parts = [f"<h1>{_escape(gettext('Espace patient'))}</h1>\n"]
    # The confirmation pages name no account: their heading's line stays, empty, as it was.
    patient = getattr(account, "patient", None)
    parts.append(
        f'<p class="patient-name">{_escape(getattr(patient, "display_name", ""))} — '
        f"{_escape(gettext('matricule'))} {_escape(getattr(patient, 'matricule', ''))}</p>\n"
    )
    if account is not None:
        acting_for = getattr(account, "acting_for", None)
        if acting_for:
            words = gettext(
                "Vous agissez pour ce patient en tant que représentant légal (%(kind)s). "
                "Chaque action est inscrite à son journal à votre nom."
            ) % {"kind": acting_for.get_kind_display()}
            parts.append(f'<p class="acting-for" role="note">{_escape(words)}</p>\n')
        represented = getattr(account, "represented", None)
        if represented:
            options = [f'<option value="moi">{_escape(gettext("Moi-même"))}</option>']
            for r in represented:
                selected = " selected" if acting_for and acting_for.pk == r.pk else ""
                options.append(
                    f'<option value="{_escape(r.patient.public_id)}"{selected}>'
                    f"{_escape(r.patient.display_name)} ({_escape(r.get_kind_display())})</option>"
                )
            parts.append(
                f'<form method="post" action="{reverse("espace:acting_for")}" class="acting">{csrf}\n'
                f'  <label for="agir-pour">{_escape(gettext("Agir pour"))}</label>\n'
                f'  <select id="agir-pour" name="patient">{"".join(options)}</select>\n'
                f'  <button type="submit" class="button secondary">{_escape(gettext("Changer"))}</button>\n'
                "</form>\n"
            )
    links = []
    for name, label in (
        ("record", gettext("Mon dossier")),
        ("journal", gettext("Mon journal d'accès")),
        ("choices", gettext("Mes choix")),
    ):
        current = ' aria-current="page"' if tab == name else ""
        links.append(f'  <a href="{reverse(f"espace:{name}")}"{current}>{_escape(label)}</a>\n')
    parts.append(
        f'<nav class="tabs" aria-label="{_escape(gettext("Onglets de l’espace patient"))}">\n'
        f"{''.join(links)}</nav>\n"
        f'<form method="post" action="{reverse("espace:logout")}" class="logout">{csrf}'
        f'<button type="submit" class="button secondary">{_escape(gettext("Déconnexion"))}</button></form>\n'
    )
    return SafeString("".join(parts))
