"""Attachments outside Kafka, addressed by the SHA-256 of their content.

:class:`BlobStore` is the interface; :class:`LocalBlobStore` keeps blobs in a folder
(``BSM_BLOB_DIR``). An S3-compatible store satisfies the same two methods with ``put_object`` /
``get_object`` under the key ``sha256/<hex>``; content addressing makes ``put`` idempotent, so a
retried mail never stores a second copy.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Protocol


class BlobStore(Protocol):
    async def put(self, content: bytes) -> str:
        """Store ``content``; returns its SHA-256 (hex)."""
        ...

    async def get(self, sha256: str) -> bytes:
        """The content stored under ``sha256`` (KeyError if absent)."""
        ...


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise KeyError(sha256)
        return self.root / sha256[:2] / sha256

    def _put(self, content: bytes, digest: str) -> None:
        target = self.path(digest)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a reader never sees half a blob, a crash leaves only a temp file.
        tmp = target.with_name(f".{digest}.{os.getpid()}.{id(content)}.tmp")
        tmp.write_bytes(content)
        os.replace(tmp, target)

    async def put(self, content: bytes) -> str:
        digest = hashlib.sha256(content).hexdigest()
        await asyncio.to_thread(self._put, content, digest)
        return digest

    async def get(self, sha256: str) -> bytes:
        path = self.path(sha256)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as exc:
            raise KeyError(sha256) from exc
