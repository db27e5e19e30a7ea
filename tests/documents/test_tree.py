"""The "Vue documentaire" tree and filter choices — counted from ``DocumentSummary`` rows or from
``document_patient_tree_idx``, listed from that index — show, for every viewer, exactly what the
previous queries showed (one window query over the whole record, three DISTINCT scans): same
classes, types, counts, listed documents in the same order, same choices."""

import datetime
import itertools
import random
from typing import Any

import pytest
from django.db.models import Count, F, QuerySet, Window
from django.db.models.functions import RowNumber

from esante.access.models import AccessGrant
from esante.access.policy import Confidentiality
from esante.accounts.models import Profession
from esante.documents.models import Document, Prescription
from esante.documents.selectors import (
    DocumentFilters,
    TreeClass,
    document_tree,
    filter_choices,
    filtered,
    filtered_summary,
    visible_documents,
    visible_summary,
)
from esante.documents.types import DOCUMENT_TYPES, Binder, class_label
from tests.access.factories import make_grant, make_patient, make_professional

from .conftest import AT


def previous_tree(documents: QuerySet[Document], *, per_type: int) -> list[tuple[Any, ...]]:
    """The tree as the window query built it before the index (kept here as the reference)."""
    counts = list(documents.order_by().values("class_code", "type_code").annotate(n=Count("id")))
    rank = Window(
        RowNumber(), partition_by=[F("type_code")], order_by=[F("clinical_at").desc(), F("id").desc()]
    )
    rows = list(
        documents.annotate(rank=rank)
        .filter(rank__lte=per_type)
        .select_related("prescription")
        .order_by("class_code", "type_code", "-clinical_at", "-id")
    )
    by_type: dict[str, list[Document]] = {}
    for document in rows:
        by_type.setdefault(document.type_code, []).append(document)
    classes: dict[str, list[Any]] = {}
    for row in sorted(counts, key=lambda r: (class_label(r["class_code"]), r["type_code"])):
        tree_class = classes.setdefault(
            row["class_code"], [row["class_code"], class_label(row["class_code"]), 0, []]
        )
        tree_class[2] += row["n"]
        document_type = DOCUMENT_TYPES.get(row["type_code"])
        tree_class[3].append(
            (
                row["type_code"],
                document_type.display_label if document_type else row["type_code"],
                row["n"],
                [
                    shown(d, d.prescription.dispensation_state if hasattr(d, "prescription") else None)
                    for d in by_type.get(row["type_code"], [])
                ],
            )
        )
    return [(code, label, count, types) for code, label, count, types in classes.values()]


def previous_choices(documents: QuerySet[Document]) -> dict[str, Any]:
    return {
        "types": sorted(
            {
                (code, DOCUMENT_TYPES[code].display_label)
                for code in documents.values_list("type_code", flat=True).distinct()
                if code in DOCUMENT_TYPES
            },
            key=lambda pair: pair[1],
        ),
        "binders": sorted(set(documents.values_list("binder", flat=True).distinct())),
        "authors": sorted(set(documents.values_list("author_name", flat=True).distinct())),
    }


def shown(document: Any, state: str | None) -> tuple[Any, ...]:
    """What the page renders of a listed document."""
    return (
        document.pk,
        document.public_id,
        document.type_code,
        document.class_code,
        document.title,
        document.clinical_at,
        document.author_name,
        document.source_system,
        state,
    )


def as_tuples(tree: list[TreeClass]) -> list[tuple[Any, ...]]:
    return [
        (
            c.code,
            c.label,
            c.count,
            [
                (
                    t.code,
                    t.label,
                    t.count,
                    [
                        shown(d, d.prescription.dispensation_state if d.prescription else None)
                        for d in t.documents
                    ],
                )
                for t in c.types
            ],
        )
        for c in tree
    ]


@pytest.fixture
def mixed(db: None) -> tuple[Any, ...]:
    """A patient with 600 documents of every type, class, level, binder, status, hidden or not,
    authored by the viewer or by others (some on the same instant), a few prescriptions."""
    viewers = {profession: make_professional(profession) for profession in Profession.values}
    others = [make_professional("doctor") for _ in range(3)]
    patient = make_patient(referring_doctor=viewers["doctor"])
    pick = random.Random(15)
    types = [(code, str(t.class_code)) for code, t in DOCUMENT_TYPES.items()]
    types.append(("11488-4", "psychiatry"))  # a type filed under a second class (imported data)
    authors = [*viewers.values(), *others]
    documents = []
    for n in range(600):
        code, class_code = pick.choice(types[:3]) if n % 3 else pick.choice(types)
        author = pick.choice(authors)
        documents.append(
            Document(
                patient=patient,
                type_code=code,
                class_code=class_code,
                title=f"Document {n}",
                author=author if n % 5 else None,
                author_name=f"Dr {author.last_name} {n % 4}",
                source_system=pick.choice(["eServices", "Hôpital"]),
                binder=pick.choice(Binder.values),
                confidentiality=pick.choice(Confidentiality.values),
                hidden_by_patient=pick.random() < 0.2,
                status=pick.choice(list(Document.Status.values) + ["current"] * 4),
                media_type="text/plain",
                content="x",
                sha256="0" * 64,
                size=1,
                text_content="long text " * 50,
                clinical_at=AT - datetime.timedelta(hours=pick.randrange(40)),  # many on the same hour
            )
        )
    created = Document.objects.bulk_create(documents)
    Prescription.objects.bulk_create(
        Prescription(
            document=document,
            prescribed_at=AT,
            prescriber_name="Dr X",
            dispensation_state=pick.choice(Prescription.DispensationState.values),
        )
        for document in created
        if document.type_code == "57833-6" and pick.random() < 0.7
    )
    return viewers, patient


FILTERS = [
    DocumentFilters(),
    DocumentFilters(type_code="57833-6"),
    DocumentFilters(type_code="11488-4"),
    DocumentFilters(class_code="report"),
    DocumentFilters(binder="general"),
    DocumentFilters(type_code="unknown"),
    DocumentFilters(date_from=(AT - datetime.timedelta(hours=20)).date()),
    DocumentFilters(words="long"),
]


@pytest.mark.parametrize("profession", Profession.values)
def test_the_tree_and_choices_are_the_previous_ones_for_every_viewer(
    mixed: tuple[Any, ...], profession: str
) -> None:
    viewers, patient = mixed
    professional = viewers[profession]
    compared = narrowed = 0
    total = Document.objects.filter(patient=patient).exclude(status=Document.Status.ENTERED_IN_ERROR).count()
    names = sorted(set(Document.objects.filter(patient=patient).values_list("author_name", flat=True)))
    by_author = [
        DocumentFilters(author=names[0]),
        DocumentFilters(type_code="11488-4", binder="general", author=names[-1]),
    ]
    for mode, referring in itertools.product(AccessGrant.Mode.values, (False, True)):
        patient.referring_doctor = professional if referring else None
        patient.save(update_fields=["referring_doctor"])
        AccessGrant.objects.filter(professional=professional, patient=patient).delete()
        grant = make_grant(professional, patient, mode=mode)
        documents = visible_documents(professional, patient, grant)
        summary = visible_summary(professional, patient, grant)
        narrowed += documents.count() < total
        expected_choices = previous_choices(documents)
        assert filter_choices(documents) == expected_choices
        assert filter_choices(summary) == expected_choices
        for filters, per_type in itertools.product(FILTERS + by_author, (20, 500, 3)):
            shown_documents = filtered(documents, filters)
            expected = previous_tree(shown_documents, per_type=per_type)
            assert as_tuples(document_tree(shown_documents, per_type=per_type)) == expected, (mode, filters)
            shown_summary = filtered_summary(summary, filters)
            assert (shown_summary is None) == bool(filters.date_from or filters.words)
            tree = document_tree(shown_documents, per_type=per_type, summary=shown_summary)
            assert as_tuples(tree) == expected, (mode, filters)
            compared += sum(len(t[3]) for c in expected for t in c[3])
    # Not a comparison of empty trees: listed documents, hidden and confidential ones left out.
    assert compared > 100
    assert narrowed == len(AccessGrant.Mode.values) * 2
    assert Document.objects.filter(patient=patient).count() == 600
