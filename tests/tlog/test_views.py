"""The public endpoints under /journal/: no login, the signed checkpoint, tiles and entry bundles
at their C2SP paths, proofs that verify, and clear refusals that reveal nothing."""

import base64
import struct
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from esante.audit.catalogue import AuditAction
from esante.audit.keys import verification_public_key
from esante.audit.services import audit_record
from esante.tlog import merkle, note
from esante.tlog.models import LogLeaf
from esante.tlog.sequencer import sequence_batch


def record(n: int) -> None:
    for i in range(n):
        audit_record(action=AuditAction.LOGOUT, actor_label="dr-secret-name", details={"n": i})


def verifier() -> note.Verifier:
    return note.parse_verifier_key(note.verifier_key(settings.TLOG_ORIGIN, verification_public_key()))


def leaf_hashes() -> list[bytes]:
    return [
        merkle.leaf_hash(bytes(c))
        for c in LogLeaf.objects.order_by("index").values_list("commitment", flat=True)
    ]


@pytest.fixture
def log(db: Any) -> list[int]:
    """A log grown in three batches: checkpoints 5, 300 and 600."""
    sizes = []
    for n in (5, 295, 300):
        record(n)
        sizes.append(sequence_batch(limit=1000).size)
    return sizes


def test_no_checkpoint_yet_is_a_404(db: Any, client: Client) -> None:
    assert client.get("/journal/checkpoint").status_code == 404
    assert client.get("/journal/tile/0/000.p/1").status_code == 404


def test_no_key_yet_is_a_404(db: Any, client: Client, settings: Any, tmp_path: Any) -> None:
    settings.AUDIT_SIGNING_KEY_FILE = tmp_path / "none.pem"
    settings.AUDIT_PUBLIC_KEY_FILE = tmp_path / "none.pub.pem"
    response = client.get("/journal/key")
    assert response.status_code == 404
    assert not (tmp_path / "none.pem").exists()  # reading the key never creates one


def test_the_latest_checkpoint_is_served_signed(log: list[int], client: Client) -> None:
    response = client.get("/journal/checkpoint")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    opened = note.open_checkpoint(response.content.decode(), verifier(), "esante.lu/edocuments")
    assert opened.size == 600 and opened.root == merkle.root_from_hashes(leaf_hashes())
    key = client.get("/journal/key").content.decode().strip()
    assert key == note.verifier_key("esante.lu/edocuments", verification_public_key())


def test_tiles_at_their_c2sp_paths(log: list[int], client: Client) -> None:
    hashes = leaf_hashes()
    full = client.get("/journal/tile/0/001")
    assert full.status_code == 200 and full.content == b"".join(hashes[256:512])
    assert "immutable" in full["Cache-Control"]
    partial = client.get("/journal/tile/0/002.p/88")
    assert partial.content == b"".join(hashes[512:600])
    assert client.get("/journal/tile/0/000.p/5").content == b"".join(hashes[:5])  # a prefix of a full tile
    level1 = client.get("/journal/tile/1/000.p/2")
    assert level1.content == merkle.root_from_hashes(hashes[:256]) + merkle.root_from_hashes(hashes[256:512])
    entries = client.get("/journal/tile/entries/002.p/88").content
    commitments = [bytes(c) for c in LogLeaf.objects.order_by("index").values_list("commitment", flat=True)]
    assert entries == b"".join(struct.pack(">H", 32) + c for c in commitments[512:600])


@pytest.mark.parametrize(
    "path",
    [
        "/journal/tile/0/002",  # not full yet
        "/journal/tile/0/002.p/89",  # more than the tree holds
        "/journal/tile/1/000",
        "/journal/tile/0/003.p/1",
        "/journal/tile/0/2",  # not 3 digits
        "/journal/tile/0/x001",  # the last group has no x
        "/journal/tile/0/001/000",  # groups but the last need an x
        "/journal/tile/99/000",
        "/journal/tile/0/x999/x999/x999/x999/x999/999",  # beyond any 64-bit tree
        "/journal/tile/0/x000/x000/x000/x000/x000/x000/001",  # too many groups
        "/journal/tile/0/000.p/256",
        "/journal/tile/0/000.p/0",
        "/journal/tile/0/000.p/05",
        "/journal/tile/entries/002.p/89",
        "/journal/tile/entries/003",
    ],
)
def test_tiles_that_do_not_exist_are_404(log: list[int], client: Client, path: str) -> None:
    assert client.get(path).status_code == 404


def test_inclusion_and_consistency_proofs_verify(log: list[int], client: Client) -> None:
    hashes = leaf_hashes()
    for index, size in ((0, 5), (4, 600), (299, 300), (599, 600), (256, 512)):
        body = client.get("/journal/proof/inclusion", {"index": index, "size": size}).json()
        assert (body["index"], body["size"]) == (index, size)
        proof = [base64.b64decode(p) for p in body["proof"]]
        merkle.verify_inclusion(index, size, hashes[index], proof, merkle.root_from_hashes(hashes[:size]))
    default = client.get("/journal/proof/inclusion", {"index": 7}).json()
    assert default["size"] == 600
    for old, new in ((5, 300), (5, 600), (300, 600), (1, 2), (600, 600)):
        body = client.get("/journal/proof/consistency", {"from": old, "to": new}).json()
        proof = [base64.b64decode(p) for p in body["proof"]]
        merkle.verify_consistency(
            old, new, proof, merkle.root_from_hashes(hashes[:old]), merkle.root_from_hashes(hashes[:new])
        )


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("inclusion", {"index": 600}),
        ("inclusion", {"index": 3, "size": 601}),  # beyond the latest checkpoint
        ("inclusion", {"index": -1}),
        ("inclusion", {"index": "x"}),
        ("inclusion", {}),
        ("consistency", {"from": 0, "to": 5}),
        ("consistency", {"from": 6, "to": 5}),
        ("consistency", {"from": 5, "to": 601}),
        ("consistency", {"to": 5}),
    ],
)
def test_bad_proof_requests_are_400_and_reveal_nothing(
    log: list[int], client: Client, path: str, query: dict[str, Any]
) -> None:
    response = client.get(f"/journal/proof/{path}", query)
    assert response.status_code == 400
    assert set(response.json()) == {"error"}
    assert b"dr-secret-name" not in response.content


def test_the_journal_is_read_only(log: list[int], client: Client) -> None:
    assert client.post("/journal/checkpoint").status_code == 405
    assert client.post("/journal/proof/inclusion?index=1").status_code == 405


def test_nothing_served_names_a_person(log: list[int], client: Client) -> None:
    served = b"".join(
        client.get(path).content
        for path in (
            "/journal/checkpoint",
            "/journal/tile/0/000",
            "/journal/tile/entries/000",
            "/journal/tile/0/002.p/88",
        )
    )
    assert b"dr-secret-name" not in served and b"logout" not in served
