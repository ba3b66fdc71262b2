"""Personal data at rest: AES-GCM envelope encryption, one data key per party.

A party's data key (32 random bytes) is stored wrapped by the service's key-encryption key
(``BSM_<SVC>_PII_KEY``); each field is encrypted with the party's data key, with the party id
and the field name as associated data, so a ciphertext cannot be moved to another party or
field. Forgetting a party (erasure) is deleting its wrapped key. A keyed blind index
(HMAC-SHA256 of the normalised address) lets a service find a party by address without storing
the address in plaintext.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


@dataclass(frozen=True)
class Sealed:
    """A wrapped data key and a field encrypted with it."""

    wrapped_key: bytes
    ciphertext: bytes


class PiiVault:
    def __init__(self, kek: bytes) -> None:
        if len(kek) != 32:
            raise ValueError("the key-encryption key is 32 bytes")
        self._kek = AESGCM(kek)
        self._index_key = hashlib.sha256(b"bsm-blind-index" + kek).digest()

    def new_data_key(self, party_id: str, random: bytes | None = None) -> bytes:
        """A fresh data key for a party, wrapped (nonce + ciphertext)."""
        dek = random if random is not None else AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(12)
        return nonce + self._kek.encrypt(nonce, dek, b"dek:" + party_id.encode())

    def _unwrap(self, party_id: str, wrapped: bytes) -> AESGCM:
        dek = self._kek.decrypt(wrapped[:12], wrapped[12:], b"dek:" + party_id.encode())
        return AESGCM(dek)

    def encrypt(self, party_id: str, wrapped_key: bytes, field: str, value: str) -> bytes:
        nonce = os.urandom(12)
        aad = f"{party_id}:{field}".encode()
        return nonce + self._unwrap(party_id, wrapped_key).encrypt(nonce, value.encode(), aad)

    def decrypt(self, party_id: str, wrapped_key: bytes, field: str, blob: bytes) -> str:
        aad = f"{party_id}:{field}".encode()
        return self._unwrap(party_id, wrapped_key).decrypt(blob[:12], blob[12:], aad).decode()

    def blind_index(self, address: str) -> bytes:
        """Keyed hash of a normalised address: equality lookups without the plaintext."""
        return hmac.new(self._index_key, address.strip().lower().encode(), "sha256").digest()
