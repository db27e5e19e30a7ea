"""Stored bytes (documents, certified copies), read back only when they match their SHA-256.

Every stored file has its SHA-256 and size recorded in its row when it was filed
(``Document.sha256`` / ``size``, ``CertifiedCopy.pdf_sha256``). Whatever the backend —
the filesystem (the embedded default) or an S3-protocol object store (``ESANTE_STORAGE=s3``) —
the bytes are checked against that record on every read: a file whose size or SHA-256 differs
is refused (``StoredContentAltered``), with a log line and an audit event
(``storage.integrity``), and its bytes are not served.

Bytes are streamed in chunks of ``CHUNK``: a large PDF is never held whole in memory. The
check is made before the first byte is sent whenever it can be:

- the object store keeps its own SHA-256 of every object it received (``ChecksumAlgorithm=
  SHA256`` on upload): when it equals the recorded one, the bytes are streamed at once, hashed
  on the way (and botocore checks them against the store's checksum as well);
- otherwise (the filesystem, or an object written by another tool) a file of up to
  ``IN_MEMORY_MAX`` bytes is read, checked and then served from memory, and a larger one is
  hashed in a first pass, checked, then read again to be streamed.

A file that changes while it is streamed (after its check) fails the second hash at its end:
its last chunk is held back until then, so the response is cut short of its ``Content-Length``
— the client never receives a complete altered file — and the refusal is logged and traced the
same way.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, cast

from botocore.exceptions import FlexibleChecksumError
from django.core.files.storage import Storage, default_storage
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

from esante.audit.catalogue import AuditAction, AuditOutcome
from esante.audit.services import audit_record

logger = logging.getLogger("esante.storage")

CHUNK = 256 * 1024
IN_MEMORY_MAX = 1024 * 1024

# The one message every view shows for a refused file (French first; the catalogues follow).
ALTERED_MESSAGE = _(
    "Le contenu de ce document ne correspond pas à son empreinte SHA-256 enregistrée : il n'est "
    "pas affiché. L'incident est enregistré ; contactez le helpdesk de l'Agence eSanté."
)


class StoredContentAltered(Exception):
    """The stored bytes are missing, or their size or SHA-256 is not the one recorded when they
    were filed: they are not served."""

    def __init__(self, name: str) -> None:
        super().__init__(f"stored file {name} does not match its recorded SHA-256")
        self.name = name


@dataclass
class StoredStream:
    """An opened stored file: a binary stream read in chunks, its size, and the SHA-256 (hex)
    the storage itself keeps of it, when it keeps one."""

    stream: IO[bytes]
    size: int
    stored_sha256: str | None = None


class S3DocumentStorage(S3Storage):
    """django-storages' S3 backend for the documents, in a private bucket.

    - Every object is written in one ``PutObject`` with ``ChecksumAlgorithm=SHA256``: the
      store computes and keeps the object's SHA-256 (a multipart upload would keep only a
      checksum of the parts' checksums); the one it answers must equal ours, or the object is
      deleted and the write fails.
    - No ACL is ever sent: the bucket's own policy (private) applies to every object.
    - Reads stream the object's body (``GetObject``) instead of django-storages' ``S3File``,
      which downloads the whole object into memory before the first read.
    - ``url()`` is refused: a signed URL would let a browser fetch a document without the
      platform's access checks and audit trail; documents are served only through its views.
    """

    def __init__(self, **settings: Any) -> None:
        settings.setdefault("default_acl", None)
        settings.setdefault("querystring_auth", True)
        settings.setdefault("file_overwrite", False)
        super().__init__(**settings)

    def _save(self, name: str, content: Any) -> str:
        cleaned = clean_name(name)
        key = self._normalize_name(cleaned)
        digest = hashlib.sha256()
        content.seek(0)
        while chunk := content.read(CHUNK):
            digest.update(chunk)
        content.seek(0)
        params = self._get_write_parameters(key, content)
        params.pop("ACL", None)
        client = self.connection.meta.client
        answer = client.put_object(
            Bucket=self.bucket_name, Key=key, Body=content, ChecksumAlgorithm="SHA256", **params
        )
        if _hex(answer.get("ChecksumSHA256")) != digest.hexdigest():
            client.delete_object(Bucket=self.bucket_name, Key=key)
            raise OSError(f"the object store did not keep {key} as sent (SHA-256 differs): not stored")
        return cleaned

    def open_stream(self, name: str) -> StoredStream:
        """The object's body as a stream, with its size and the SHA-256 the store keeps of it.
        Raises FileNotFoundError when there is no such object."""
        key = self._normalize_name(clean_name(name))
        client = self.connection.meta.client
        try:
            answer = client.get_object(Bucket=self.bucket_name, Key=key, ChecksumMode="ENABLED")
        except client.exceptions.NoSuchKey:
            raise FileNotFoundError(f"no stored object {name}") from None
        return StoredStream(
            stream=answer["Body"],
            size=int(answer["ContentLength"]),
            stored_sha256=_hex(answer.get("ChecksumSHA256")),
        )

    def object_sizes(self) -> Iterator[tuple[str, int]]:
        """Every object of the storage (under its ``location``), by name, with its size."""
        prefix = self._normalize_name("")
        prefix = f"{prefix}/" if prefix else ""
        pages = self.connection.meta.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket_name, Prefix=prefix
        )
        for page in pages:
            for entry in page.get("Contents", ()):
                yield entry["Key"].removeprefix(prefix), int(entry["Size"])

    def url(
        self, name: str | None, parameters: Any = None, expire: Any = None, http_method: Any = None
    ) -> str:
        raise NotImplementedError("documents are served only through the platform's views (access checked)")


def _hex(checksum: str | None) -> str | None:
    """An S3 ``ChecksumSHA256`` (base64) as hex; None for a missing or composite (``...-N``) one."""
    if not checksum or "-" in checksum:
        return None
    try:
        return base64.b64decode(checksum, validate=True).hex()
    except (ValueError, binascii.Error):
        return None


def _open(storage: Storage, name: str) -> StoredStream:
    opener = getattr(storage, "open_stream", None)
    if opener is not None:
        return cast(StoredStream, opener(name))
    file = storage.open(name, "rb")
    return StoredStream(stream=cast(IO[bytes], file), size=int(file.size))


def _refuse(name: str, *, expected: str, found: str, size: int, expected_size: int) -> StoredContentAltered:
    """Logs and traces a refused file (in a transaction of its own); the error to raise."""
    logger.error(
        "stored file %s refused: SHA-256 %s, %d bytes recorded; %s, %d bytes found",
        name,
        expected,
        expected_size,
        found,
        size,
    )
    audit_record(
        action=AuditAction.STORAGE_INTEGRITY,
        outcome=AuditOutcome.FAILURE,
        actor_label="esante.storage",
        object_type="stored_file",
        object_id=name[:64],
        details={
            "name": name[:300],
            "expected_sha256": expected,
            "found_sha256": found,
            "expected_size": expected_size,
            "found_size": size,
        },
    )
    return StoredContentAltered(name)


class VerifiedContent:
    """A stored file whose bytes were checked before the first is read (see the module)."""

    def __init__(
        self, name: str, *, sha256: str, size: int, opened: StoredStream, data: bytes | None, storage: Storage
    ) -> None:
        self.name = name
        self.sha256 = sha256
        self.size = size
        self._opened = opened
        self._data = data
        self._storage = storage

    def __iter__(self) -> Iterator[bytes]:
        if self._data is not None:
            yield self._data
            return
        digest = hashlib.sha256()
        read = 0
        # Each chunk is sent once the next one is read, and the last one only once the whole file
        # matched: an altered file never reaches the client whole.
        pending = b""
        try:
            while chunk := self._opened.stream.read(CHUNK):
                digest.update(chunk)
                read += len(chunk)
                if pending:
                    yield pending
                pending = chunk
        except FlexibleChecksumError:
            pass  # botocore's check against the store's checksum, at the body's end: ours follows
        finally:
            self.close()
        if read != self.size or digest.hexdigest() != self.sha256:
            raise _refuse(
                self.name, expected=self.sha256, found=digest.hexdigest(), size=read, expected_size=self.size
            )
        if pending:
            yield pending

    def read(self) -> bytes:
        """The whole content (for the viewers that render a CDA or a text): checked, then read."""
        if self._data is not None:
            return self._data
        return b"".join(self)

    def close(self) -> None:
        self._opened.stream.close()


def open_verified(
    name: str, *, sha256: str, size: int | None, storage: Storage | None = None
) -> VerifiedContent:
    """The stored file ``name``, checked against its recorded ``sha256`` (hex) and ``size``
    (None when the row records none: the SHA-256 alone decides).

    Raises StoredContentAltered (logged and traced) when the file is missing or does not match,
    having read at most one pass of it. The result is iterated (chunks) or ``read()``; close it
    when it is not read to its end."""
    storage = storage if storage is not None else default_storage
    try:
        opened = _open(storage, name)
    except FileNotFoundError:
        raise _refuse(name, expected=sha256, found="", size=0, expected_size=size or 0) from None
    if size is None:
        size = opened.size
    if opened.size != size or (opened.stored_sha256 is not None and opened.stored_sha256 != sha256):
        opened.stream.close()
        raise _refuse(
            name, expected=sha256, found=opened.stored_sha256 or "", size=opened.size, expected_size=size
        )
    if opened.stored_sha256 is not None:
        return VerifiedContent(name, sha256=sha256, size=size, opened=opened, data=None, storage=storage)
    if size <= IN_MEMORY_MAX:
        try:
            data = opened.stream.read(size + 1)
        finally:
            opened.stream.close()
        found = hashlib.sha256(data).hexdigest()
        if found != sha256 or len(data) != size:
            raise _refuse(name, expected=sha256, found=found, size=len(data), expected_size=size)
        return VerifiedContent(name, sha256=sha256, size=size, opened=opened, data=data, storage=storage)
    digest = hashlib.sha256()
    read = 0
    try:
        while chunk := opened.stream.read(CHUNK):
            digest.update(chunk)
            read += len(chunk)
    finally:
        opened.stream.close()
    if read != size or digest.hexdigest() != sha256:
        raise _refuse(name, expected=sha256, found=digest.hexdigest(), size=read, expected_size=size)
    reopened = _open(storage, name)
    return VerifiedContent(name, sha256=sha256, size=size, opened=reopened, data=None, storage=storage)


def verified_response(
    name: str, *, sha256: str, size: int | None, content_type: str, storage: Storage | None = None
) -> StreamingHttpResponse:
    """The stored file as a streamed response (``Content-Length`` set), checked as
    ``open_verified`` checks it. Raises StoredContentAltered before any response exists."""
    content = open_verified(name, sha256=sha256, size=size, storage=storage)
    response = StreamingHttpResponse(content, content_type=content_type)
    response["Content-Length"] = str(content.size)
    return response


def altered_page(request: HttpRequest) -> HttpResponse:
    """The page every portal view shows for a refused file (the refusal is logged and traced)."""
    return render(request, "core/content_altered.html", {"message": ALTERED_MESSAGE}, status=500)


__all__ = [
    "ALTERED_MESSAGE",
    "altered_page",
    "CHUNK",
    "S3DocumentStorage",
    "StoredContentAltered",
    "StoredStream",
    "VerifiedContent",
    "open_verified",
    "verified_response",
]
