"""Attachments: files stored by content hash (``bsm_shared.blobs``), who may reference which
(``readmodel.attachment_owners``), and their types judged from the content by B4's one list
(``bsm_shared.attachments``), as policy judges them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING

from bsm_shared import attachments as file_types
from bsm_shared.blobs import BlobNotFound, LocalBlobStore
from bsm_shared.contract import payloads as p

from .. import core
from ..access import Principal
from ..errors import ApiError
from ..models import SendMessage, StoredAttachment
from ..readmodel import own_attachments, owned_attachments

if TYPE_CHECKING:
    from .gateway import Gateway


class Files:
    def __init__(self, gw: Gateway, blobs: LocalBlobStore) -> None:
        self.gw, self.blobs = gw, blobs

    def blob_path(self, sha256: str) -> Path | None:
        """Where the blob store keeps ``sha256`` (None: not a hash)."""
        try:
            return self.blobs.path(sha256)
        except BlobNotFound:
            return None

    async def store(self, who: Principal, data: bytes, filename: str) -> StoredAttachment:
        """An upload of ``who``, once B4's list accepts its content."""
        judged = file_types.judge(data[:file_types.HEAD_BYTES], filename)
        if isinstance(judged, file_types.Refused):
            raise ApiError(415, "attachment_type_refused", judged.message, rule="B4",
                           detected=judged.detected, accepted=file_types.ACCEPTED)
        sha = await self.blobs.put(data)  # atomic: a reader never sees half a blob
        # The uploader may now reference it (whoever else uploaded the same bytes before: the
        # answer is the same either way, so an upload tells nothing about others' files).
        await own_attachments(self.gw.pool, self.gw.s, who.party_id, [sha])
        return StoredAttachment(sha256=sha, size=len(data), content_type=judged.mime,
                                filename=filename)

    async def download(self, who: Principal, message_id: str,
                       sha256: str) -> tuple[bytes, str, str | None]:
        """The bytes, type and name of an attachment of a message ``who`` may see."""
        row = await self.gw.readable_message(who, message_id)
        atts = row["attachments"]
        refs = {a["sha256"]: a for a in (json.loads(atts) if isinstance(atts, str) else atts or [])}
        ref = refs.get(sha256)
        # `readable_message` answered: a recipient reaches a message's files only once it
        # reached them (a stopped message's files were never theirs to see).
        path = self.blob_path(sha256) if ref is not None and len(sha256) == 64 else None
        if ref is None or path is None or not path.is_file():
            raise ApiError(404, "attachment_not_found",
                           f"Message {message_id} has no attachment {sha256} you can open.")
        return (await asyncio.to_thread(path.read_bytes),
                str(ref.get("content_type") or "application/octet-stream"), ref.get("filename"))

    async def refs(self, who: Principal, body: SendMessage) -> list[p.AttachmentRef]:
        """The message's attachments as references — each one ``who`` may use (uploaded by
        them, or come to them with a message: ``readmodel.attachment_owners``) — once they fit
        the shared limits (and the body with them): ``413`` naming the limit and the size
        otherwise."""
        hashes = [a.sha256 for a in body.attachments]
        owned = await owned_attachments(self.gw.pool, self.gw.s, who.party_id, hashes)
        refs = [await self.ref(a.sha256, a.filename, owned) for a in body.attachments]
        too_large = core.size_refusal(body.text, body.html, [a.size for a in refs])
        if too_large is not None:
            raise ApiError(413, too_large.code, too_large.message, limit=too_large.limit,
                           size=too_large.size)
        return refs

    async def ref(self, sha256: str, filename: str, owned: set[str]) -> p.AttachmentRef:
        """The reference of a stored file, its type judged from its content by B4's list
        (``bsm_shared.attachments``; a file that came with a message in another type keeps
        that type, and policy refuses it, C4)."""
        # Someone else's file and a hash nobody uploaded get the same answer, decided before
        # the blob store is asked: a hash is not an oracle of what others uploaded.
        try:
            if sha256 not in owned:
                raise BlobNotFound(sha256)
            found = await self.blobs.head(sha256, file_types.HEAD_BYTES)
        except BlobNotFound:
            raise ApiError(422, "unknown_attachment", f"No attachment {sha256} of yours; upload "
                           "it with `POST /v1/attachments` first.") from None
        judged = file_types.judge(found.head, filename)
        return p.AttachmentRef(sha256=sha256, size=found.size, filename=filename,
                               content_type=file_types.content_type(judged))
