"""Ed25519 signatures over events (G1: the record is tamper-evident).

The signature covers the *canonical form* of every envelope field except ``signature``: the
JSON object with sorted keys, no insignificant whitespace, UTF-8. Verification works on the
raw JSON object as received, never on a re-serialised model, so a reader with a newer model
(extra defaulted fields) still verifies what an older producer signed.

Trust: events that claim to come from one of our services must carry a valid signature by a
key trusted for that producer. Outside producers (the platform's order or account services) may
publish unsigned on the input topics, unless the deployment lists keys for them, in which case
their events must verify too.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from cachetools import LRUCache
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from . import merkle

#: The largest batch one signature covers (a larger one is signed in parts).
MAX_BATCH = 65_536

#: The services of bsm: their events are always signed and always verified.
OUR_PRODUCERS: frozenset[str] = frozenset({"alias", "policy", "delivery", "metrics", "gateway"})


def canonical_bytes(event: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: every field but ``signature``, canonical JSON."""
    return canonical_json({k: v for k, v in event.items() if k != "signature"})


def canonical_json(obj: Any) -> bytes:
    """Canonical JSON, the one formula: keys sorted, no insignificant whitespace, UTF-8 — the
    bytes of ``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``.

    orjson writes the same bytes for strings, integers, booleans, null, lists and dicts, four
    times faster with the check below (py-spy under make bench: ``json.dumps`` here was a tenth
    of the busy time of alias and metrics); floats are not the same (``1e-05`` is ``0.00001``,
    NaN ``null``), nor what orjson refuses (integers beyond 64 bits, keys that are not
    strings, lone surrogates, subclasses): those take ``json``.
    ``tests/unit/test_canonical_json.py`` holds the two to the same bytes.
    """
    if _plain(obj):
        try:
            return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # orjson.JSONEncodeError is one
            pass
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


_LEAVES = frozenset({str, int, bool, type(None)})


def _plain(obj: Any) -> bool:
    """Only exact dicts, lists, tuples, strings, integers, booleans and None (no float)."""
    t = type(obj)
    if t is dict:
        items = obj.values()
    elif t is list or t is tuple:
        items = obj
    else:
        return t in _LEAVES
    for item in items:
        t = type(item)
        if t in _LEAVES:
            continue
        if (t is dict or t is list or t is tuple) and _plain(item):
            continue
        return False
    return True


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short, stable id of a public key (first 16 hex digits of its SHA-256)."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_private_key(b64: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from the base64 of its 32 raw bytes."""
    raw = base64.b64decode(b64, validate=True)
    if len(raw) != 32:
        raise ValueError("an Ed25519 private key is 32 bytes")
    return Ed25519PrivateKey.from_private_bytes(raw)


def load_public_key(b64: str) -> Ed25519PublicKey:
    """An Ed25519 public key from the base64 of its 32 raw bytes."""
    raw = base64.b64decode(b64, validate=True)
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def public_b64(private_key: Ed25519PrivateKey) -> str:
    """The base64 of the raw public key belonging to a private key."""
    pub = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(pub).decode()


@dataclass(frozen=True)
class Signer:
    """Signs the events one producer writes."""

    producer: str
    private_key: Ed25519PrivateKey

    @property
    def kid(self) -> str:
        return key_id(self.private_key.public_key())

    def sign(self, event: Mapping[str, Any]) -> str:
        """One event's own signature (``ed25519:…``; still written by tools and tests, and
        every event of the log signed so keeps verifying)."""
        sig = self.private_key.sign(canonical_bytes(event))
        return f"ed25519:{self.kid}:{base64.b64encode(sig).decode()}"

    def sign_batch(self, events: Sequence[Mapping[str, Any]]) -> list[str]:
        """One signature for a batch: over the Merkle root (RFC 9162) of the events' canonical
        bytes; each event gets the signed root's signature and its own inclusion proof
        (``ed25519-merkle:<key id>:<signature>:<tree size>:<index>:<audit path>``), so it
        verifies alone — in a consumer, a timeline or a replay."""
        return self.sign_bodies([canonical_bytes(e) for e in events])

    def sign_bodies(self, bodies: Sequence[bytes]) -> list[str]:
        """:meth:`sign_batch` over events already in canonical form (``canonical_bytes``)."""
        if not bodies:
            return []
        if len(bodies) > MAX_BATCH:
            return [*self.sign_bodies(bodies[:MAX_BATCH]), *self.sign_bodies(bodies[MAX_BATCH:])]
        leaves = [merkle.leaf_hash(b) for b in bodies]
        top = merkle.root(leaves)
        sig = base64.b64encode(self.private_key.sign(batch_message(top, len(leaves)))).decode()
        return [
            f"{MERKLE_ALG}:{self.kid}:{sig}:{len(leaves)}:{i}:"
            f"{base64.b64encode(b''.join(path)).decode()}"
            for i, path in enumerate(merkle.all_inclusion_proofs(leaves))
        ]


#: The batch signature's algorithm name (:meth:`Signer.sign_batch`).
MERKLE_ALG = "ed25519-merkle"


def batch_message(root: bytes, size: int) -> bytes:
    """What a batch signature signs: a domain tag, the tree size and the root (a root alone
    could be replayed as the root of another size)."""
    return b"bsm-event-batch-v1\n" + size.to_bytes(8, "big") + root


class SignatureError(ValueError):
    """An event's signature is missing, malformed, from an untrusted key, or does not verify."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Verifier:
    """Checks signatures against the keys trusted for each producer."""

    trusted: Mapping[str, tuple[Ed25519PublicKey, ...]] = field(default_factory=dict)
    our_producers: frozenset[str] = OUR_PRODUCERS
    _by_kid: dict[tuple[str, str], tuple[VerifyKey, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    #: Batch roots whose signature verified (bounded): the other events of a batch cost two
    #: hashes and a few proof steps, not an Ed25519 verification each.
    _roots: LRUCache = field(default_factory=lambda: LRUCache(maxsize=4096), init=False,
                             repr=False, compare=False)

    def __post_init__(self) -> None:
        # Key ids are computed once, not per event: verification runs for every event read.
        # Verification itself goes through libsodium (PyNaCl): the same Ed25519, about half
        # the cost of OpenSSL's here (≈ 65 µs against ≈ 120 µs an event, measured).
        by_kid: dict[tuple[str, str], list[VerifyKey]] = {}
        for producer, keys in self.trusted.items():
            for k in keys:
                raw = k.public_bytes(Encoding.Raw, PublicFormat.Raw)
                by_kid.setdefault((producer, key_id(k)), []).append(VerifyKey(raw))
        self._by_kid.update({key: tuple(v) for key, v in by_kid.items()})

    @classmethod
    def from_b64(cls, trusted: Mapping[str, Iterable[str]]) -> "Verifier":
        return cls({p: tuple(load_public_key(k) for k in keys) for p, keys in trusted.items()})

    def must_be_signed(self, producer: str) -> bool:
        return producer in self.our_producers or producer in self.trusted

    def verify(self, event: Mapping[str, Any]) -> bool:
        """Raise :class:`SignatureError` unless the event is acceptable.

        Returns True when a signature was checked, False for an unsigned event from an outside
        producer that the deployment does not hold keys for (the caller decides whether that
        producer may write to the topic at hand).
        """
        producer = str(event.get("producer", ""))
        signature = event.get("signature")
        if not self.must_be_signed(producer):
            if signature is None:
                return False
            # A signature we cannot check is not proof of anything: treat the event as unsigned.
            return False
        if not isinstance(signature, str) or not signature:
            raise SignatureError("unsigned", f"events from {producer!r} must be signed")
        alg = signature.split(":", 1)[0]
        if alg == MERKLE_ALG:
            kid, sig, message = self._batch_parts(event, signature)
        elif alg == "ed25519":
            try:
                _, kid, sig_b64 = signature.split(":", 2)
                sig = base64.b64decode(sig_b64, validate=True)
            except ValueError as exc:
                raise SignatureError("malformed_signature", str(exc)) from exc
            message = canonical_bytes(event)
        else:
            raise SignatureError("unsupported_algorithm", alg)
        keys = self._by_kid.get((producer, kid), ())
        if not keys:
            raise SignatureError(
                "untrusted_key", f"key {kid} is not trusted for producer {producer!r}"
            )
        remembered = (producer, kid, sig, message)
        if alg == MERKLE_ALG and remembered in self._roots:
            return True  # this batch's root was verified already: one check per batch
        for key in keys:
            try:
                key.verify(message, sig)
                if alg == MERKLE_ALG:
                    self._roots[remembered] = True
                return True
            except (BadSignatureError, ValueError):
                continue
        raise SignatureError("bad_signature", f"signature of {producer!r} does not verify")

    def _batch_parts(self, event: Mapping[str, Any], signature: str) -> tuple[str, bytes, bytes]:
        """(key id, signature, the signed message) of a batch signature: the root is rebuilt
        from this event's own bytes and its inclusion proof."""
        try:
            _, kid, sig_b64, size_s, index_s, path_b64 = signature.split(":")
            sig = base64.b64decode(sig_b64, validate=True)
            size, index = int(size_s), int(index_s)
            path_bytes = base64.b64decode(path_b64, validate=True)
            if len(path_bytes) % merkle.HASH_BYTES or not 0 < size <= MAX_BATCH:
                raise ValueError("a malformed inclusion proof")
            path = [path_bytes[i:i + merkle.HASH_BYTES]
                    for i in range(0, len(path_bytes), merkle.HASH_BYTES)]
            top = merkle.root_from_proof(merkle.leaf_hash(canonical_bytes(event)), index,
                                         size, path)
        except (ValueError, merkle.ProofError) as exc:
            raise SignatureError("malformed_signature", str(exc)) from exc
        return kid, sig, batch_message(top, size)
