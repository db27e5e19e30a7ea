"""Signed notes and checkpoints: known answers from Go's sumdb/note tests (key ID, verifier key,
a deterministic Ed25519 signature), and every way a note can fail."""

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from esante.tlog import note

# golang.org/x/mod/sumdb/note note_test.go (TestSign, TestNewVerifier): the private key
# "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz" is 0x01 || seed.
SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
SIGNED = (
    TEXT + "\n\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def peter() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(SEED)


def test_known_answers_from_go_sumdb_note() -> None:
    key = peter()
    assert note.verifier_key("PeterNeumann", key.public_key()) == VKEY
    assert note.key_id("PeterNeumann", key.public_key()).hex() == "c74f20a3"
    assert note.sign_note(TEXT, "PeterNeumann", key) == SIGNED
    assert note.open_note(SIGNED, note.parse_verifier_key(VKEY)) == TEXT


def test_a_changed_text_or_signature_is_refused() -> None:
    verifier = note.parse_verifier_key(VKEY)
    with pytest.raises(note.NoteError, match="does not verify"):
        note.open_note(SIGNED.replace("answer", "answers"), verifier)
    stamp = SIGNED.rsplit(" ", 1)[1]
    raw = bytearray(base64.b64decode(stamp))
    raw[10] ^= 1
    with pytest.raises(note.NoteError, match="does not verify"):
        note.open_note(SIGNED.replace(stamp.strip(), base64.b64encode(bytes(raw)).decode()), verifier)


def test_a_note_signed_by_another_key_is_refused() -> None:
    other = Ed25519PrivateKey.generate()
    forged = note.sign_note(TEXT, "PeterNeumann", other)  # same name, another key: another key ID
    with pytest.raises(note.NoteError, match="no signature by PeterNeumann"):
        note.open_note(forged, note.parse_verifier_key(VKEY))


@pytest.mark.parametrize(
    "bad",
    [
        TEXT,  # no signature block
        TEXT + "\n- PeterNeumann abc\n",  # not an em dash
        TEXT + "\n\u2014 PeterNeumann not-base64!\n",
        SIGNED.rstrip("\n"),
    ],
)
def test_malformed_notes_are_refused(bad: str) -> None:
    with pytest.raises(note.NoteError):
        note.open_note(bad, note.parse_verifier_key(VKEY))


@pytest.mark.parametrize(
    "bad",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong key ID
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # unknown algorithm
        "PeterNeumann+c74f20a3",
    ],
)
def test_bad_verifier_keys_are_refused(bad: str) -> None:
    with pytest.raises(note.NoteError):
        note.parse_verifier_key(bad)


def test_checkpoint_round_trip_and_origin() -> None:
    key = peter()
    root = bytes(range(32))
    signed = note.sign_checkpoint("esante.lu/edocuments", 42, root, key)
    assert signed.startswith(
        f"esante.lu/edocuments\n42\n{base64.b64encode(root).decode()}\n\n\u2014 esante.lu/edocuments "
    )
    verifier = note.parse_verifier_key(note.verifier_key("esante.lu/edocuments", key.public_key()))
    checkpoint = note.open_checkpoint(signed, verifier, "esante.lu/edocuments")
    assert (checkpoint.origin, checkpoint.size, checkpoint.root) == ("esante.lu/edocuments", 42, root)
    with pytest.raises(note.NoteError, match="not 'other.example/log'"):
        note.open_checkpoint(signed, verifier, "other.example/log")


@pytest.mark.parametrize(
    "text",
    ["origin\n", "origin\n01\nAAAA\n", "origin\n-1\nAAAA\n", "origin\n3\nAAAA\n", "origin\n3\n" + "A" * 44],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(note.NoteError):
        note.parse_checkpoint(text)


def test_a_cosignature_is_a_timestamped_cosignature_v1_signature() -> None:
    """C2SP tlog-cosignature: key ID over type 0x04, u64 timestamp, Ed25519 over
    ``cosignature/v1\\ntime T\\n`` and the checkpoint text; the log's own signature is ignored."""
    log_key, witness_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    signed = note.sign_checkpoint("example.org/log", 7, b"\x05" * 32, log_key)
    text = note.note_text(signed)
    line = note.cosign(text, "witness.example/w", witness_key, 1_700_000_000)
    vkey = note.verifier_key("witness.example/w", witness_key.public_key(), note.ALG_COSIGNATURE_V1)
    cosigner = note.parse_cosigner_key(vkey)
    assert cosigner.key_id != note.key_id("witness.example/w", witness_key.public_key())
    assert note.open_cosignature(signed + line, cosigner) == 1_700_000_000
    raw = base64.b64decode(line.split(" ")[2])
    witness_key.public_key().verify(raw[12:], b"cosignature/v1\ntime 1700000000\n" + text.encode())
    assert note.lines_signed_by(signed + line, cosigner) == [line]
    assert note.signature_names(signed + line) == ["example.org/log", "witness.example/w"]
    with pytest.raises(note.NoteError, match="no cosignature"):
        note.open_cosignature(signed, cosigner)
    stranger = Ed25519PrivateKey.generate().public_key()
    other = note.parse_cosigner_key(note.verifier_key("witness.example/w", stranger, note.ALG_COSIGNATURE_V1))
    with pytest.raises(note.NoteError, match="no cosignature"):
        note.open_cosignature(signed + line, other)  # another key of the same name: not its line
    retimed = bytearray(raw)
    retimed[11] ^= 1  # the timestamp is signed
    forged = f"\u2014 witness.example/w {base64.b64encode(bytes(retimed)).decode()}\n"
    with pytest.raises(note.NoteError, match="does not verify"):
        note.open_cosignature(signed + forged, cosigner)
    with pytest.raises(note.NoteError, match="not a witness's Ed25519 cosignature key"):
        note.parse_cosigner_key(note.verifier_key("example.org/log", log_key.public_key()))
