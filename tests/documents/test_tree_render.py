"""``{% tree_documents %}`` writes, byte for byte, what the template loop it replaces wrote: for
every dispensation state, with and without the dispense icon, for titles and names that need
escaping, in each portal language."""

import datetime
import uuid

import pytest
from django.template import Context, Template
from django.test import RequestFactory
from django.utils import translation

from esante.documents.selectors import TreeDocument, TreePrescription
from esante.documents.templatetags.documents_tree import tree_documents

# The loop of ``documents/_documents.html`` before the tag (the reference).
PREVIOUS = (
    "{% load i18n %}{% for document in documents %}\n          <li>{% if document.prescription %}"
    '{% include "documents/_status.html" with prescription=document.prescription %}'
    '{% if can_dispense and document.prescription.dispensation_state != "dispensed" %}'
    '<a class="dispense-icon" href="{{ viewer_prefix }}{{ document.public_id }}/dispensation/" '
    'title="{% translate \'Marquer comme dispensé\' %}"><span aria-hidden="true">✚</span>'
    '<span class="visually-hidden">{% blocktranslate with title=document.title '
    'date=document.clinical_at|date:"SHORT_DATETIME_FORMAT" %}'
    "Marquer comme dispensé : {{ title }} du {{ date }}{% endblocktranslate %}</span></a>"
    "{% endif %}{% endif %}\n"
    '            <a href="{{ viewer_prefix }}{{ document.public_id }}/">'
    '{{ document.clinical_at|date:"SHORT_DATETIME_FORMAT" }}</a>\n'
    '            <span class="doc-meta">{{ document.source_system }} · {{ document.title }} · '
    "{{ document.author_name }}</span></li>\n        {% endfor %}"
)


def documents() -> list[TreeDocument]:
    at = datetime.datetime(2026, 3, 29, 0, 30, 15, 123456, tzinfo=datetime.UTC)  # the night of a DST change
    listed = []
    for n, state in enumerate([None, "open", "partial", "dispensed", None, "open"]):
        listed.append(
            TreeDocument(
                pk=n,
                public_id=uuid.UUID(int=n * 7919),
                type_code="57833-6",
                class_code="prescription",
                title=f'Ordonnance <b>{n}</b> & « "guillemets" » l\'été',
                clinical_at=at - datetime.timedelta(hours=n * 13, minutes=n),
                author_name=f"Dr O'Brien & <i>{n}</i>",
                source_system="eServices <script>",
                prescription=None if state is None else TreePrescription(state),
            )
        )
    return listed


@pytest.mark.parametrize("language", ["fr", "de", "en"])
@pytest.mark.parametrize("can_dispense", [False, True])
def test_the_tag_writes_what_the_template_wrote(language: str, can_dispense: bool) -> None:
    request = RequestFactory().get("/")
    values = {
        "documents": documents(),
        "viewer_prefix": "/edocuments/patient/7a1c/&x/",
        "can_dispense": can_dispense,
        "request": request,
    }
    with translation.override(language):
        expected = Template(PREVIOUS).render(Context(values))
        written = tree_documents(Context(values), values["documents"])
    assert written == expected
    assert "&lt;script&gt;" in written and "<script>" not in written
    assert ("dispense-icon" in written) is can_dispense
    assert tree_documents(Context(values), []) == ""
