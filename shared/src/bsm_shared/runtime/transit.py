"""Personal data in transit between our services: sealed values.

Some events our services produce must carry an address another of our services needs (a
seller's authorized sender addresses, the customer-service address bounce notices go to). They
never carry it in plaintext: the value is sealed with AES-GCM under the deployment's transit
key (``BSM_TRANSIT_KEY``, held only by the services that need the plaintext) as
``sealed:v1:<base64(nonce ‖ ciphertext)>``, with the event type and field name as associated
data, so a sealed value cannot be moved to another field. Outside producers may still send
plaintext on the input topics; :func:`unseal` accepts both.
"""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "sealed:v1:"


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


def seal(key: bytes, value: str, context: str) -> str:
    """Seal ``value`` for ``context`` (e.g. ``SellerSettingsChanged.authorized_senders``)."""
    nonce = os.urandom(12)
    ct = AESGCM(key).encrypt(nonce, value.encode(), context.encode())
    return PREFIX + base64.b64encode(nonce + ct).decode()


def unseal(key: bytes, value: str, context: str) -> str:
    """The plaintext of a sealed value (or the value itself if it was sent in plaintext)."""
    if not is_sealed(value):
        return value
    blob = base64.b64decode(value[len(PREFIX):], validate=True)
    return AESGCM(key).decrypt(blob[:12], blob[12:], context.encode()).decode()
