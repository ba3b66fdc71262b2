"""Merkle trees as RFC 9162 §2.1 (Certificate Transparency 2.0) defines them: pure, no I/O.

A producer signs the root of a tree over a batch of events once; each event carries the signed
root and its inclusion proof, so any single event still verifies on its own
(:mod:`.signing`). Hashes are SHA-256; a leaf is hashed with the prefix ``0x00`` and an inner
node with ``0x01`` (so a leaf can never pass for a node); a tree of ``n`` leaves splits at the
largest power of two smaller than ``n``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_BYTES = 32


class ProofError(ValueError):
    """An inclusion proof that does not fit its tree (index, size or length)."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n ≥ 2)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def root(leaves: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of the leaf hashes ``leaves`` (SHA-256 of nothing for none)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = list(leaves)
    # Bottom-up, pairing left to right and carrying an odd last node up unchanged: the same
    # tree as the recursive definition (split at the largest power of two), without recursion.
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``leaves`` (RFC 9162 §2.1.3.1)."""
    n = len(leaves)
    if not 0 <= index < n:
        raise ProofError(f"leaf {index} is not in a tree of {n}")
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return [*inclusion_proof(index, leaves[:k]), root(leaves[k:])]
    return [*inclusion_proof(index - k, leaves[k:]), root(leaves[:k])]


def all_inclusion_proofs(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """Every leaf's audit path, from the levels of one bottom-up pass (O(n log n) hashes in
    all, where asking :func:`inclusion_proof` leaf by leaf would hash the tree n times)."""
    n = len(leaves)
    proofs: list[list[bytes]] = [[] for _ in range(n)]
    # members[j]: the leaf indexes under node j of the current level.
    level = list(leaves)
    members = [[i] for i in range(n)]
    while len(level) > 1:
        nxt, nxt_members = [], []
        for j in range(0, len(level) - 1, 2):
            for i in members[j]:
                proofs[i].append(level[j + 1])
            for i in members[j + 1]:
                proofs[i].append(level[j])
            nxt.append(node_hash(level[j], level[j + 1]))
            nxt_members.append(members[j] + members[j + 1])
        if len(level) % 2:
            nxt.append(level[-1])
            nxt_members.append(members[-1])
        level, members = nxt, nxt_members
    return proofs


def root_from_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root a leaf hash and its audit path lead to (RFC 9162 §2.1.3.2); compare it with the
    signed root. Raises :class:`ProofError` when the path cannot belong to such a tree."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("the proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the proof is shorter than the tree is deep")
    return r
