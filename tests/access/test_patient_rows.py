"""``patient_rows`` writes the lists' rows byte for byte as the template it replaced did.

``TEMPLATE_ROWS`` is that template (``access/_patient_table.html`` before the rows were written in
Python): every branch of a row (sex, record state, alerts, access, last opening, usage name,
characters to escape) is rendered by both, in each language of the portal, and compared.
"""

import datetime
import itertools
from typing import Any

import pytest
from django.template import engines
from django.template.loader import get_template
from django.utils import timezone, translation

from esante.access.models import AccessGrant
from esante.access.selectors import ListPage
from esante.patients.models import Patient

pytestmark = pytest.mark.django_db

TEMPLATE_ROWS = '{% load i18n %}{% if page.total %}\n<div class="table-wrap">\n<table class="patients">\n  <thead>\n    <tr>\n      <th scope="col">{% translate "Nom de naissance" %}</th><th scope="col">{% translate "Nom d\'usage" %}</th><th scope="col">{% translate "Nom" %}</th>\n      <th scope="col">{% translate "Prénom" %}</th><th scope="col">{% translate "Date de naissance" %}</th><th scope="col">{% translate "Sexe" %}</th>\n      <th scope="col">{% translate "InsC" %}</th><th scope="col">{% translate "Taux" %}</th><th scope="col">{% translate "N° dossier" %}</th>\n      <th scope="col">{% translate "Identifiant" %}</th><th scope="col">{% translate "Etat dossier" %}</th><th scope="col">{% translate "Alertes" %}</th>\n      <th scope="col">{% translate "Actions" %}</th><th scope="col">{% translate "Parcours" %}</th>\n    </tr>\n  </thead>\n  <tbody>\n  {% for patient in page.rows %}\n    {% if patient.my_access_until %}{% url \'documents:record\' patient.public_id as open_url %}{% else %}{% url \'access:dialog\' patient.public_id as open_url %}{% endif %}\n    <tr>\n      <td>{{ patient.birth_name|upper }}</td>\n      <td>{{ patient.usage_name|upper }}</td>\n      <td><a href="{{ open_url }}">{{ patient.usage_name|default:patient.birth_name|upper }}</a></td>\n      <td>{{ patient.first_names }}</td>\n      <td>{{ patient.birth_date|date:"SHORT_DATE_FORMAT" }}</td>\n      <td>{% if patient.sex == "F" %}<span title="{% translate \'Féminin\' %}">♀</span>{% elif patient.sex == "M" %}<span title="{% translate \'Masculin\' %}">♂</span>{% else %}<span title="{% translate \'Autre\' %}">⚥</span>{% endif %}</td>\n      <td>{{ patient.matricule }}</td>\n      <td>{{ patient.taux }}%</td>\n      <td>{{ patient.dossier_number }}</td>\n      <td>{{ patient.platform_identifier }}</td>\n      <td>{% if patient.dossier_state == "active" %}<span class="state-active" title="{% translate \'Actif\' %}">●</span>{% else %}{{ patient.get_dossier_state_display }}{% endif %}</td>\n      <td>\n        {% if patient.dossier_state == "closed" %}<span class="alert">{% translate "Dossier fermé" %}</span>{% endif %}\n        {% if patient.dossier_state == "opposed" %}<span class="alert">{% translate "Opposition du patient" %}</span>{% endif %}\n        {% if patient.blocked_me %}<span class="alert">{% translate "Accès refusé par le patient" %}</span>{% endif %}\n        {% if patient.emergency_in_progress %}<span class="alert">{% translate "Accès en urgence en cours" %}</span>{% endif %}\n      </td>\n      <td>{% if patient.my_access_until %}<a href="{{ open_url }}">{% translate "Ouvrir le dossier" %}</a>{% else %}<a href="{{ open_url }}">{% translate "Demander l\'accès" %}</a>{% endif %}</td>\n      <td>\n        {% if patient.my_last_opening %}{% blocktranslate with opened=patient.my_last_opening|date:"SHORT_DATETIME_FORMAT" %}Dernière ouverture : {{ opened }}{% endblocktranslate %}<br>{% endif %}\n        {% if patient.my_access_until %}{% blocktranslate with until=patient.my_access_until|date:"SHORT_DATETIME_FORMAT" %}Accès jusqu\'au {{ until }}{% endblocktranslate %}{% endif %}\n      </td>\n    </tr>\n  {% endfor %}\n  </tbody>\n</table>\n</div>\n{% endif %}\n<p class="pager-summary">{% blocktranslate with start=page.start end=page.end total=page.total %}{{ start }} à {{ end }} sur {{ total }} éléments{% endblocktranslate %}</p>\n'  # noqa: E501


def _patients() -> list[Patient]:
    now = timezone.now()
    patients = []
    combos = itertools.product(
        ["F", "M", "U"],
        [Patient.DossierState.ACTIVE, Patient.DossierState.CLOSED, Patient.DossierState.OPPOSED],
        [None, now + datetime.timedelta(hours=5)],
        [None, now - datetime.timedelta(days=3, minutes=7)],
        [False, True],
    )
    for n, (sex, state, until, opened, flag) in enumerate(combos):
        patient = Patient(
            id=n + 1,
            public_id=f"00000000-0000-4000-8000-{n:012d}",
            matricule=f"19041120{n:05d}",
            birth_name=["Dupont", "O'Brien & <Fils>", "Müller"][n % 3],
            usage_name=["", "Dupuis", "d'Évry"][n % 3 - 1],
            first_names=["Jean", 'Zoé "Lou"', "Ana-Inês"][n % 3],
            birth_date=[datetime.date(1904, 11, 20), None][n % 7 == 0],
            sex=sex,
            taux=[40, 80, 100][n % 3],
            dossier_number=f"16649{n:05d}",
            platform_identifier=f"17{n:08d}",
            dossier_state=state,
        )
        patient.my_access_until = until
        patient.my_access_mode = AccessGrant.Mode.CARE if until else None
        patient.my_last_opening = opened
        patient.blocked_me = flag
        patient.emergency_in_progress = not flag and n % 2 == 0
        patients.append(patient)
    return patients


@pytest.mark.parametrize("language", ["fr", "de", "en"])
def test_rows_are_the_templates_byte_for_byte(language: str, rf: Any) -> None:
    patients = _patients()
    before = engines["django"].from_string(TEMPLATE_ROWS)
    after = get_template("access/_patient_table.html")
    request = rf.get("/")
    with translation.override(language):
        for size in (1, 3, len(patients)):
            page = ListPage(rows=patients[:size], total=size, page=1, page_size=100)
            expected = before.render({"page": page}, request)
            assert after.render({"page": page}, request) == expected
        empty = ListPage(rows=[], total=0, page=1, page_size=25)
        assert after.render({"page": empty}, request) == before.render({"page": empty}, request)
    assert "O&#x27;BRIEN &amp; &lt;FILS&gt;" in expected and "Zoé &quot;Lou&quot;" in expected
