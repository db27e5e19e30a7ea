"""The backup and restore drill with the documents in an S3-protocol object store
(``ESANTE_STORAGE=s3``, moto's standalone server on loopback): ``esante backup`` streams every
object of the bucket into the backup, ``esante restore`` writes them into a new, empty bucket."""

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import KEY_ID, REGION, SECRET, s3_client

from .test_backup import Site, manifest


class BucketSite(Site):
    """A platform whose documents are in a bucket of its own."""

    def __init__(self, root: Path, name: str, endpoint: str) -> None:
        super().__init__(root, name)
        self.client = s3_client(endpoint)
        self.bucket = f"esante-{name}-{uuid.uuid4().hex[:8]}"
        self.client.create_bucket(
            Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        self.environment = {
            "ESANTE_STORAGE": "s3",
            "ESANTE_S3_BUCKET": self.bucket,
            "ESANTE_S3_ENDPOINT_URL": endpoint,
            "ESANTE_S3_REGION": REGION,
            "ESANTE_S3_ACCESS_KEY_ID": KEY_ID,
            "ESANTE_S3_SECRET_ACCESS_KEY": SECRET,
        }

    def objects(self) -> dict[str, str]:
        """Every object of the bucket, by key, with the SHA-256 of its bytes."""
        found: dict[str, str] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for entry in page.get("Contents", ()):
                body = self.client.get_object(Bucket=self.bucket, Key=entry["Key"])["Body"].read()
                found[entry["Key"]] = hashlib.sha256(body).hexdigest()
        return found


@pytest.fixture
def sites(s3_server: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    made = {name: BucketSite(tmp_path, name, s3_server) for name in ("s3source", "s3target", "s3replica")}
    try:
        yield made
    finally:
        for site in made.values():
            site.drop()


def test_backup_and_restore_with_the_documents_in_a_bucket(sites: dict[str, Any], tmp_path: Path) -> None:
    source, target = sites["s3source"], sites["s3target"]
    source.ok("demo", "--no-serve", "--certificate-port", "0")
    source.ok("anchor_audit")
    objects = source.objects()
    assert any(key.startswith("documents/") for key in objects)
    assert not (source.data_dir / "documents").exists() or source.files("documents") == {}

    directory = tmp_path / "backup"
    output = source.ok("backup", "--to", str(directory), "--include-signing-key")
    written = manifest(directory)
    assert written["documents"] == len(objects) and f"{len(objects)} document files" in output
    backed_up = {e["path"]: e["sha256"] for e in written["files"]}  # type: ignore[attr-defined]
    assert {f"documents/{key}": sha for key, sha in objects.items()} == {
        name: sha for name, sha in backed_up.items() if name.startswith("documents/")
    }
    assert SECRET not in output

    target.ok("restore", "--from", str(directory))
    assert target.objects() == objects
    verified = target.esante("verify_audit", "-v", "0")
    assert verified.returncode == 0, verified.stderr
    # Each restored object carries the store's own SHA-256 again: the platform serves it.
    key = next(iter(objects))
    head = target.client.head_object(Bucket=target.bucket, Key=key, ChecksumMode="ENABLED")
    assert "ChecksumSHA256" in head

    # A bucket that holds objects is not restored into.
    other = BucketSite(tmp_path, "s3other", source.environment["ESANTE_S3_ENDPOINT_URL"])
    try:
        other.environment["ESANTE_S3_BUCKET"] = target.bucket
        refused = other.esante("restore", "--from", str(directory))
        assert refused.returncode == 1 and "the document storage is not empty" in refused.stderr
    finally:
        other.drop()

    # A bucket versioned and replicated on its own: the backup leaves the documents out, and the
    # restore runs onto the replica, which holds them.
    source.client.put_bucket_versioning(Bucket=source.bucket, VersioningConfiguration={"Status": "Enabled"})
    source.ok("anchor_audit")  # the first backup's own event, signed
    slim = tmp_path / "backup-without-documents"
    output = source.ok("backup", "--to", str(slim), "--include-signing-key", "--without-documents")
    assert "no document file (--without-documents)" in output
    written = manifest(slim)
    assert written["documents"] == 0 and written["documents_included"] is False
    assert not any(e["path"].startswith("documents/") for e in written["files"])  # type: ignore[attr-defined]
    replica = sites["s3replica"]
    replica.environment["ESANTE_S3_BUCKET"] = source.bucket
    restored = replica.ok("restore", "--from", str(slim))
    assert "no document file" in restored
    assert replica.esante("verify_audit", "-v", "0").returncode == 0
    assert source.objects() == objects  # the replica's documents untouched
