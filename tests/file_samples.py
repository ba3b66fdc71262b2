"""Small real files of each type B4 names, and of types it does not, built here byte by byte
(what a mail client or a browser would send, minus the bulk)."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib


def png() -> bytes:
    """A 1×1 PNG (signature, IHDR, IDAT, IEND with real CRCs)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\x00\x00\x00\x00")) + chunk(b"IEND", b""))


def gif(frames: int = 1) -> bytes:
    """A minimal valid GIF with ``frames`` 1×1 images."""
    head = b"GIF89a" + (1).to_bytes(2, "little") * 2 + bytes([0x80, 0, 0]) + b"\x00\x00\x00" * 2
    frame = (b"\x21\xf9\x04\x00\x0a\x00\x00\x00" + b"\x2c" + b"\x00\x00" * 2
             + (1).to_bytes(2, "little") * 2 + b"\x00" + b"\x02\x02\x44\x01\x00")
    return head + frame * frames + b"\x3b"


def zipped(*names: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in names:
            z.writestr(name, f"<x>{name}</x>")
    return buf.getvalue()


def docx() -> bytes:
    """The entries a word processor writes first, in its order."""
    return zipped("[Content_Types].xml", "_rels/.rels", "word/_rels/document.xml.rels",
                  "word/document.xml")


def xlsx() -> bytes:
    return zipped("[Content_Types].xml", "_rels/.rels", "xl/workbook.xml")


def doc() -> bytes:
    """An OLE2 compound file header (Word 97–2003) and an empty sector."""
    return b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 16 + b"\x3e\x00\x03\x00\xfe\xff" \
        + b"\x00" * 1024


def bmp() -> bytes:
    """A 1×1 24-bit BMP (BITMAPINFOHEADER)."""
    pixels = b"\x00\x00\xff\x00"
    info = struct.pack("<IiiHHIIiiII", 40, 1, 1, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info) + len(pixels), 0, 0, 54) + info + pixels


def tiff() -> bytes:
    """A little-endian TIFF header with an empty directory."""
    return b"II*\x00\x08\x00\x00\x00" + b"\x00\x00" + b"\x00\x00\x00\x00"


def jpeg() -> bytes:
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"


def pdf() -> bytes:
    return b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def txt() -> bytes:
    return "Factura nº 1182736 — instrucciones de montaje.\n".encode()


def webp() -> bytes:
    return b"RIFF\x1a\x00\x00\x00WEBPVP8 \x0e\x00\x00\x00" + b"\x00" * 14


def exe() -> bytes:
    return b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 64


#: B4's list: name → (a file of that type, its MIME type).
ALLOWED: dict[str, tuple[bytes, str]] = {
    "txt": (txt(), "text/plain"),
    "pdf": (pdf(), "application/pdf"),
    "doc": (doc(), "application/msword"),
    "docx": (docx(), "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    "jpg": (jpeg(), "image/jpeg"),
    "gif": (gif(), "image/gif"),
    "tiff": (tiff(), "image/tiff"),
    "bmp": (bmp(), "image/bmp"),
    "png": (png(), "image/png"),
}
#: Files of other types: name → (the file, the MIME type its content shows, None: unknown).
REFUSED: dict[str, tuple[bytes, str | None]] = {
    "webp": (webp(), "image/webp"),
    "exe": (exe(), "application/x-msdownload"),
    "zip": (zipped("fotos/1.txt"), "application/zip"),
    "xlsx": (xlsx(), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "binary": (b"\x00\x01\x02\xfe\xff", None),
    "text with NUL": (b"plain\x00text", None),
}
