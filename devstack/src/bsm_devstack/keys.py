"""Per-service keys for the local stack, generated once into ``.stack/secrets.env``.

* ``BSM_<SVC>_SIGNING_KEY``: base64 (standard, padded) of the 32 raw bytes of an Ed25519
  private key, one per service (alias, policy, delivery, metrics, gateway).
* ``BSM_ALIAS_PII_KEY``, ``BSM_DELIVERY_PII_KEY``: base64 of 32 random bytes (AES-256
  key-encryption keys).
* ``BSM_GATEWAY_TOKEN_KEY``: base64 of 32 random bytes.
* ``BSM_KEYRING_KEY``: base64 of 32 random bytes (wraps the party keyring's data keys; shared
  by alias, policy, delivery and the gateway).
* ``BSM_DELIVERY_VERP_KEY``: base64 of 32 random bytes (HMAC of VERP return paths);
  ``BSM_ALIAS_VERP_KEY`` holds the same value (the mail door verifies the return paths).
* ``BSM_DELIVERY_DKIM_KEY``: base64 of a PEM RSA-2048 private key (DKIM for the mail domain).
* ``BSM_METRICS_TOKEN``: 43 URL-safe characters (256 random bits): the service credential the
  metrics service requires on every request but ``/health`` (the gateway's proxy and ``bsm
  dispute`` present it).

Existing keys are never regenerated (data encrypted or signed with them must stay readable);
only keys missing from the file are added. The public halves go to ``.stack/env`` as
``BSM_TRUSTED_KEYS`` (JSON ``{"alias": ["<b64 raw public key>"], ...}``).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from bsm_devstack.envfile import format_env, read_env_file

SERVICES: tuple[str, ...] = ("alias", "policy", "delivery", "metrics", "gateway")
PII_KEY_SERVICES: tuple[str, ...] = ("alias", "delivery")
#: Keys two services must share under their own prefixed names: (copy) -> (source).
SAME_AS: dict[str, str] = {"BSM_ALIAS_VERP_KEY": "BSM_DELIVERY_VERP_KEY"}

HEADER = (
    "bsm local stack secrets: generated once by `python -m bsm_devstack up`, never regenerated.\n"
    "Do not commit. Delete this file (and the stack's data) to start over with new keys."
)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def signing_key_var(service: str) -> str:
    return f"BSM_{service.upper()}_SIGNING_KEY"


def _new_signing_key() -> str:
    raw = Ed25519PrivateKey.generate().private_bytes(
        Encoding.Raw, PrivateFormat.Raw, NoEncryption()
    )
    return _b64(raw)


def _new_secret_key() -> str:
    return _b64(os.urandom(32))


def _new_token() -> str:
    """A bearer token: 32 random bytes, URL-safe base64 without padding (RFC 6750 token68)."""
    return secrets.token_urlsafe(32)


def _new_dkim_key() -> str:
    """Base64 of a PEM (PKCS#8) RSA-2048 private key: the dev DKIM key of the mail domain."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _b64(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))


def _generators() -> dict[str, Callable[[], str]]:
    gens: dict[str, Callable[[], str]] = {
        signing_key_var(svc): _new_signing_key for svc in SERVICES
    }
    gens.update({f"BSM_{svc.upper()}_PII_KEY": _new_secret_key for svc in PII_KEY_SERVICES})
    gens["BSM_GATEWAY_TOKEN_KEY"] = _new_secret_key
    # Shared by the services that seal or open personal data in transit (bsm_shared.runtime.transit).
    gens["BSM_TRANSIT_KEY"] = _new_secret_key
    # Key-encryption key of the party keyring (per-party data keys; erasure shreds them).
    gens["BSM_KEYRING_KEY"] = _new_secret_key
    # Shared by delivery (signs action links in mail) and the gateway (verifies them).
    gens["BSM_LINK_KEY"] = _new_secret_key
    # Delivery: HMAC key of VERP return paths, and the DKIM key of the marketplace domain.
    gens["BSM_DELIVERY_VERP_KEY"] = _new_secret_key
    gens["BSM_DELIVERY_DKIM_KEY"] = _new_dkim_key
    # The metrics service's service credential (the gateway and `bsm dispute` present it).
    gens["BSM_METRICS_TOKEN"] = _new_token
    return gens


def ensure_secrets(path: Path) -> tuple[dict[str, str], list[str]]:
    """Make sure ``path`` holds every key; returns (all secrets, names of keys just created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = read_env_file(path) if path.exists() else {}
    missing = {name: gen() for name, gen in _generators().items() if name not in existing}
    for name, source in SAME_AS.items():  # also added to a stack whose source key exists
        if name not in existing:
            missing[name] = existing.get(source) or missing[source]
    if not path.exists():
        _create_exclusive(path, format_env(missing, HEADER))
    elif missing:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(format_env(missing))
            fh.flush()
            os.fsync(fh.fileno())
    path.chmod(0o600)
    secrets = read_env_file(path)
    return secrets, sorted(missing)


def _create_exclusive(path: Path, text: str) -> None:
    """Create ``path`` (mode 600) with ``text``; never replaces an existing file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, path)  # fails if path appeared meanwhile: keep the other one
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def public_key(signing_key_b64: str) -> str:
    """Base64 of the raw 32-byte Ed25519 public key for a base64 raw private key."""
    raw = base64.b64decode(signing_key_b64, validate=True)
    key = Ed25519PrivateKey.from_private_bytes(raw)
    return _b64(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def trusted_keys(secrets: dict[str, str]) -> dict[str, list[str]]:
    return {svc: [public_key(secrets[signing_key_var(svc)])] for svc in SERVICES}


def trusted_keys_json(secrets: dict[str, str]) -> str:
    return json.dumps(trusted_keys(secrets), separators=(",", ":"))
