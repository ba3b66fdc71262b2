"""Attachments: upload a file (B4's types, judged from the content) and download one of a
message you may see."""

# No `from __future__ import annotations`: FastAPI must see the local Annotated aliases.

from typing import Annotated

from fastapi import APIRouter, File, UploadFile
from fastapi.responses import Response

from bsm_shared import attachments as file_types

from .. import access, core
from ..errors import ApiError
from ..models import StoredAttachment
from ..service import Gateway
from .deps import Caller

#: Where files are uploaded: the one route whose body may be larger than a message (`.door`).
UPLOAD_PATH = "/v1/attachments"


def router(gw: Gateway) -> APIRouter:
    r = APIRouter(tags=["attachments"])
    upload_limit = gw.settings.max_attachment_bytes

    @r.post(UPLOAD_PATH, response_model=StoredAttachment, status_code=201,
            summary=f"Upload an attachment (≤ {upload_limit:,} bytes)",
            description="Multipart, one part `file`. The type is judged from the content; "
            "the file name is made one safe line (RFC 2047 encoded words decoded, control "
            "characters as spaces, no path, at most 255 characters) and answered as stored. "
            "A request body larger than the limit (plus multipart overhead) is refused from "
            "its `Content-Length`, before it is read.",
            responses={413: {"description": "Too large (`attachment_too_large`, "
                             "`request_too_large`): the limit and the size are named."},
                       415: {"description": "Type not on B4's list "
                             f"({file_types.ACCEPTED}), judged from the content "
                             "(`attachment_type_refused`)."},
                       422: {"description": "U+0000 in the file name (`unstorable_text`)."}})
    async def upload(who: Caller, file: Annotated[UploadFile, File()]) -> StoredAttachment:
        access.require(who, "upload")
        chunks, size = [], 0
        while chunk := await file.read(1 << 20):
            size += len(chunk)
            if size > upload_limit:
                raise ApiError(413, "attachment_too_large",
                               f"The file is larger than {upload_limit:,} bytes, the most one "
                               "attachment may be.", limit=upload_limit, size=file.size)
            chunks.append(chunk)
        return await gw.files.store(who, b"".join(chunks),
                                    core.readable_filename(file.filename))

    @r.get("/v1/messages/{message_id}/attachments/{sha256}",
           response_class=Response, summary="Download an attachment of a message",
           description="For the message's sender, its recipient once it was delivered "
           "(before, and if it never is, the message does not exist for them), and the "
           "dispute team. Served as a download (`Content-Disposition: attachment`, "
           "`nosniff`) with the type judged from the content when it was stored.",
           responses={200: {"content": {"application/octet-stream": {}},
                            "description": "The file."},
                      404: {"description": "No such message of yours, or no such attachment "
                            "on it (yet)."}})
    async def download(message_id: str, sha256: str, who: Caller) -> Response:
        data, content_type, filename = await gw.files.download(who, message_id, sha256)
        return Response(
            content=data, media_type=content_type,
            # The name is cleaned again here: rows stored before names were cleaned at the
            # door hold them as they came.
            headers={"Content-Disposition": core.content_disposition(filename),
                     "X-Content-Type-Options": "nosniff"})

    return r
