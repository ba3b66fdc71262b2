"""Which files a message may carry (B4), in one place: every door and the policy judge with it.

B4's list: txt, pdf, doc, docx, jpg, gif, tiff, bmp, png — **judged by content**, never by the
file name or the type a client declares. :func:`judge` reads the first :data:`HEAD_BYTES` of a
file (the magic numbers; the ``filetype`` library knows most of them) and answers the
:class:`FileType` it is or a :class:`Refused` naming what it is instead. Sizes and counts are
the contract's (:mod:`bsm_shared.contract.limits`: ``MAX_ATTACHMENT_BYTES`` and
``MAX_ATTACHMENTS`` per message).

Who uses it: the gateway's upload (``415 attachment_type_refused``) and its attachment
references, the mail door (each attachment and inline image is labelled with the type judged
here), and the policy (C4 ``attachment_type_not_allowed``, the kinds a contact reason takes, and
the raster types an inline ``data:`` image may have).

DOCX is a ZIP archive, judged by its content: ``filetype``'s Office Open XML matcher wants
``[Content_Types].xml`` (or ``_rels/.rels``) first and a ``word/`` part among the next entries,
so another ZIP (a spreadsheet, an archive of anything) is not a DOCX. Where ``filetype`` is not
enough, the check is written here by hand:

* DOC is judged by the OLE2 compound-file header (``filetype``'s own DOC matcher wants a Word
  structure at a fixed offset that real files do not always have); an OLE2 file ``filetype``
  knows as something else (an Excel or PowerPoint file) stays what it is.
* BMP: ``filetype`` takes any file starting with ``BM`` (a text "BMW …" too); here the header's
  DIB size must be one a BMP has.
* Plain text has no magic number: valid UTF-8 (a character cut at the end of the head aside)
  without NUL bytes.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Literal

import filetype

Kind = Literal["document", "image"]

#: How much of a file :func:`judge` reads (enough for every signature it checks).
HEAD_BYTES = 8192


@dataclass(frozen=True)
class FileType:
    """One type of B4's list."""

    name: str  # as B4 names it: "txt", "docx", …
    mime: str
    kind: Kind
    extensions: tuple[str, ...]


#: B4's list, in its order.
TYPES: tuple[FileType, ...] = (
    FileType("txt", "text/plain", "document", ("txt",)),
    FileType("pdf", "application/pdf", "document", ("pdf",)),
    FileType("doc", "application/msword", "document", ("doc",)),
    FileType("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
             "document", ("docx",)),
    FileType("jpg", "image/jpeg", "image", ("jpg", "jpeg")),
    FileType("gif", "image/gif", "image", ("gif",)),
    FileType("tiff", "image/tiff", "image", ("tif", "tiff")),
    FileType("bmp", "image/bmp", "image", ("bmp",)),
    FileType("png", "image/png", "image", ("png",)),
)
BY_MIME: dict[str, FileType] = {t.mime: t for t in TYPES}
#: The MIME types of the list.
MIME_TYPES: frozenset[str] = frozenset(BY_MIME)
#: The images of the list: also the types an inline ``data:`` image in HTML may have.
IMAGE_MIME_TYPES: frozenset[str] = frozenset(t.mime for t in TYPES if t.kind == "image")
#: The list as people read it ("txt, pdf, doc, …"), for refusals and explanations.
ACCEPTED = ", ".join(t.name for t in TYPES)

@dataclass(frozen=True)
class Refused:
    """A file that is not of B4's list: what its content shows it is (None: unknown)."""

    detected: str | None
    filename: str = ""
    code: str = "attachment_type_not_allowed"

    @property
    def message(self) -> str:
        name = f"{self.filename} " if self.filename else "The file "
        return (f"{name}is {self.detected or 'of an unknown type'} by its content; accepted: "
                f"{ACCEPTED}.")


def kind_of(mime: str) -> Kind | None:
    """``document`` or ``image`` for a type of the list (parameters ignored), None otherwise."""
    t = BY_MIME.get(mime.split(";")[0].strip().lower())
    return t.kind if t is not None else None


def content_type(judged: FileType | Refused) -> str:
    """The MIME type to label a file with: its type, or what it was detected as."""
    if isinstance(judged, FileType):
        return judged.mime
    return judged.detected or "application/octet-stream"


_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
#: Sizes of the DIB headers a BMP file has (BITMAPCOREHEADER … BITMAPV5HEADER).
_DIB_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})


def _detected(head: bytes) -> str | None:
    if head.startswith(_OLE2):
        other = _mime(head)
        return other if other not in (None, "application/msword") else "application/msword"
    if head.startswith(b"BM"):
        dib = int.from_bytes(head[14:18], "little") if len(head) >= 18 else 0
        return "image/bmp" if dib in _DIB_SIZES else _text(head)
    return _mime(head) or _text(head)


def _mime(head: bytes) -> str | None:
    kind = filetype.guess(head)
    return kind.mime if kind is not None and kind.mime != "image/bmp" else None


def _text(head: bytes) -> str | None:
    if b"\x00" in head:
        return None
    try:  # final=False: a character cut by the end of the head is not an error
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return None
    return "text/plain"


def judge(head: bytes, filename: str = "") -> FileType | Refused:
    """The type of B4's list a file is, judged from its first bytes (at least
    :data:`HEAD_BYTES` of them, or the whole file), or why not. ``filename`` only names the
    file in the refusal: the name never decides."""
    detected = _detected(bytes(head[:HEAD_BYTES]))
    found = BY_MIME.get(detected or "")
    return found if found is not None else Refused(detected, filename)
