"""The blob store's contract (``bsm_shared.blobs``), which every service relies on: the mail
door and the gateway write, policy and delivery read, the gateway serves. Any implementation
of :class:`BlobStore` must pass these; the local one is also held to its layout on disk, which
several processes share (``BSM_BLOB_DIR``)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from bsm_shared.blobs import (
    BlobNotFound, BlobStore, BlobTooLarge, LocalBlobStore, blob_path,
)
from bsm_shared.contract.limits import MAX_ATTACHMENT_BYTES

CONTENT = b"%PDF-1.7\nfactura 1182736\n" * 100


@pytest.fixture(params=["local"])
def store(request, tmp_path) -> BlobStore:
    return LocalBlobStore(tmp_path / "blobs")


async def test_a_blob_is_stored_under_the_sha256_of_its_content_and_read_back(store):
    sha = await store.put(CONTENT)
    assert sha == hashlib.sha256(CONTENT).hexdigest()
    assert await store.get(sha) == CONTENT
    found = await store.head(sha, 8)
    assert (found.size, found.head) == (len(CONTENT), CONTENT[:8])


async def test_storing_the_same_content_again_or_at_once_keeps_one_blob(store, tmp_path):
    shas = await asyncio.gather(*(store.put(CONTENT) for _ in range(8)))
    assert set(shas) == {hashlib.sha256(CONTENT).hexdigest()}
    assert await store.put(CONTENT) == shas[0]
    files = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert [p.name for p in files] == [shas[0]]  # no temporary file left behind


async def test_an_absent_blob_and_anything_but_a_hash_are_not_found(store):
    for key in ("0" * 64, "../../etc/passwd", "A" * 64, "0" * 63, ""):
        with pytest.raises(BlobNotFound):
            await store.get(key)
        with pytest.raises(BlobNotFound):
            await store.head(key)
    assert issubclass(BlobNotFound, KeyError)


async def test_a_read_is_bounded_a_larger_blob_is_refused_not_read(store):
    sha = await store.put(CONTENT)
    assert await store.get(sha, limit=len(CONTENT)) == CONTENT
    with pytest.raises(BlobTooLarge) as refused:
        await store.get(sha, limit=len(CONTENT) - 1)
    assert (refused.value.size, refused.value.limit) == (len(CONTENT), len(CONTENT) - 1)


def test_the_layout_is_two_hex_digits_then_the_hash(tmp_path):
    sha = "ab" + "0" * 62
    assert blob_path(tmp_path, sha) == tmp_path / "ab" / sha
    assert LocalBlobStore(tmp_path).path(sha) == blob_path(tmp_path, sha)
    with pytest.raises(BlobNotFound):
        blob_path(tmp_path, "ab/../../x" + "0" * 54)


async def test_a_blob_another_process_wrote_in_the_layout_is_read(tmp_path):
    sha = hashlib.sha256(CONTENT).hexdigest()
    path = Path(tmp_path, sha[:2], sha)
    path.parent.mkdir()
    path.write_bytes(CONTENT)
    assert await LocalBlobStore(tmp_path).get(sha) == CONTENT


async def test_a_crash_mid_write_leaves_no_blob_under_the_hash(tmp_path, monkeypatch):
    store = LocalBlobStore(tmp_path)

    def crash(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        await store.put(CONTENT)
    monkeypatch.undo()
    sha = hashlib.sha256(CONTENT).hexdigest()
    with pytest.raises(BlobNotFound):
        await store.get(sha)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_the_default_bound_is_what_one_message_may_carry():
    import inspect
    assert inspect.signature(LocalBlobStore.get).parameters["limit"].default \
        == MAX_ATTACHMENT_BYTES
