"""``visible_documents`` (SQL) gives exactly the answers of ``access.policy.may_read_document``."""

import itertools

import pytest

from esante.access.models import AccessGrant
from esante.access.policy import Confidentiality, DocumentClass, may_read_document
from esante.accounts.models import Profession
from esante.documents.models import Document
from esante.documents.selectors import visible_documents
from tests.access.factories import make_grant, make_patient, make_professional

from .conftest import AT


@pytest.mark.parametrize("profession", Profession.values)
@pytest.mark.django_db
def test_sql_filter_agrees_with_the_policy_everywhere(profession: str) -> None:
    professional = make_professional(profession)
    other_author = make_professional("doctor")
    for referring in (True, False):
        patient = make_patient(referring_doctor=professional if referring else None)
        documents = []
        for class_code, level, mine, hidden in itertools.product(
            DocumentClass.values, Confidentiality.values, (True, False), (True, False)
        ):
            documents.append(
                Document(
                    patient=patient,
                    type_code="11488-4",
                    class_code=class_code,
                    confidentiality=level,
                    author=professional if mine else other_author,
                    author_name="A",
                    hidden_by_patient=hidden,
                    title=f"{class_code}-{level}-{mine}-{hidden}",
                    source_system="T",
                    binder="general",
                    media_type="text/plain",
                    content="x",
                    sha256="0" * 64,
                    size=1,
                    clinical_at=AT,
                )
            )
        Document.objects.bulk_create(documents)
        for mode in AccessGrant.Mode.values:
            AccessGrant.objects.filter(professional=professional, patient=patient).delete()
            grant = make_grant(professional, patient, mode=mode)
            visible = set(visible_documents(professional, patient, grant).values_list("title", flat=True))
            expected = {
                d.title
                for d in documents
                if may_read_document(
                    mode=mode,
                    profession=profession,
                    class_code=d.class_code,
                    confidentiality=d.confidentiality,
                    is_author=d.author == professional,
                    is_referring_doctor=referring,
                    hidden_by_patient=d.hidden_by_patient,
                )
            }
            assert visible == expected, (mode, referring)
