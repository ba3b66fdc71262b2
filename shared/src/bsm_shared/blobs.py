"""The blob store: attachments outside Kafka, addressed by the SHA-256 of their content.

One port and one layout for every service that touches files — the mail door and the gateway
write them, the policy and delivery read them, the gateway serves them:

* :class:`BlobStore` is the port. Content addressing makes ``put`` idempotent (a retried mail
  or upload never stores a second copy) and lets any reader check what it got.
* :class:`LocalBlobStore` keeps blobs in a folder shared by the services (``BSM_BLOB_DIR``) as
  ``<dir>/<sha[:2]>/<sha>`` (:func:`blob_path`; 256 subfolders keep directories small). A write
  goes to a temporary file that is renamed into place, so a reader never sees half a blob and a
  crash leaves only a temporary file. Reads are bounded: no blob larger than a message's
  attachments may be (``MAX_ATTACHMENT_BYTES``) is read whole into memory.

An S3-compatible store satisfies the same port with ``put_object`` / ``get_object`` (a ranged
get for :meth:`BlobStore.head`) under the same key.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .contract.limits import MAX_ATTACHMENT_BYTES

_SHA256 = re.compile(r"[0-9a-f]{64}")


class BlobNotFound(KeyError):
    """No blob under this hash (or not a SHA-256 in lower-case hex at all)."""


class BlobTooLarge(ValueError):
    """A blob larger than the reader's bound."""

    def __init__(self, sha256: str, size: int, limit: int) -> None:
        super().__init__(f"blob {sha256} is {size:,} bytes; at most {limit:,} are read")
        self.sha256, self.size, self.limit = sha256, size, limit


@dataclass(frozen=True)
class BlobHead:
    """A blob's size and first bytes (enough to judge its type)."""

    size: int
    head: bytes


def is_sha256(value: str) -> bool:
    return bool(_SHA256.fullmatch(value))


def blob_path(root: Path | str, sha256: str) -> Path:
    """Where a blob lives under ``root``: ``<root>/<sha[:2]>/<sha>``. Anything but a SHA-256 in
    lower-case hex is :class:`BlobNotFound` (never a path outside ``root``)."""
    if not is_sha256(sha256):
        raise BlobNotFound(sha256)
    return Path(root) / sha256[:2] / sha256


class BlobStore(Protocol):
    async def put(self, content: bytes) -> str:
        """Store ``content``; returns its SHA-256 (hex). Storing it again changes nothing."""
        ...

    async def get(self, sha256: str, *, limit: int = MAX_ATTACHMENT_BYTES) -> bytes:
        """The content under ``sha256``: :class:`BlobNotFound` if absent, :class:`BlobTooLarge`
        if larger than ``limit`` (nothing that large is read)."""
        ...

    async def head(self, sha256: str, n: int = 8192) -> BlobHead:
        """The blob's size and its first ``n`` bytes (:class:`BlobNotFound` if absent)."""
        ...


class LocalBlobStore:
    """:class:`BlobStore` in a folder (``BSM_BLOB_DIR``), laid out by :func:`blob_path`."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        return blob_path(self.root, sha256)

    def _put(self, content: bytes, digest: str) -> None:
        target = self.path(digest)
        if target.is_file():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a reader never sees half a blob, a crash leaves only a temp file.
        # The temp file is this writer's own (mkstemp: a unique name, created exclusively), so
        # concurrent writers of one blob, threads of one process included, never share it.
        fd, name = tempfile.mkstemp(prefix=f".{digest}.", suffix=".tmp", dir=target.parent)
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(content)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def _get(self, sha256: str, limit: int) -> bytes:
        try:
            with self.path(sha256).open("rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size > limit:
                    raise BlobTooLarge(sha256, size, limit)
                data = f.read(limit + 1)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise BlobNotFound(sha256) from exc
        if len(data) > limit:  # grew since fstat: still never more than the bound in memory
            raise BlobTooLarge(sha256, len(data), limit)
        return data

    def _head(self, sha256: str, n: int) -> BlobHead:
        try:
            with self.path(sha256).open("rb") as f:
                return BlobHead(os.fstat(f.fileno()).st_size, f.read(n))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise BlobNotFound(sha256) from exc

    async def put(self, content: bytes) -> str:
        digest = hashlib.sha256(content).hexdigest()
        await asyncio.to_thread(self._put, content, digest)
        return digest

    async def get(self, sha256: str, *, limit: int = MAX_ATTACHMENT_BYTES) -> bytes:
        return await asyncio.to_thread(self._get, sha256, limit)

    async def head(self, sha256: str, n: int = 8192) -> BlobHead:
        return await asyncio.to_thread(self._head, sha256, n)
