"""DKIM signatures for the marketplace domain (dkimpy), over the headers of the allow-list."""

from __future__ import annotations

import functools

import dkim

#: Signed headers: the ones compose writes that a recipient's client shows or threads by.
SIGNED_HEADERS = (b"from", b"to", b"subject", b"date", b"message-id", b"in-reply-to",
                  b"references", b"mime-version", b"content-type")


def sign(raw: bytes, *, domain: str, selector: str, private_key_pem: bytes) -> bytes:
    """``raw`` with a ``DKIM-Signature`` header prepended (relaxed/relaxed, rsa-sha256)."""
    present = {line.split(b":", 1)[0].strip().lower() for line in raw.split(b"\n\n", 1)[0]
               .replace(b"\r\n", b"\n").split(b"\n") if b":" in line and not line[:1].isspace()}
    header = dkim.sign(
        raw, selector.encode(), domain.encode(), private_key_pem,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[h for h in SIGNED_HEADERS if h in present],
    )
    return header + raw


# -- speed: the RSA operation through OpenSSL ---------------------------------------------------
# dkimpy computes the RSA signature in pure Python (two 1024-bit `pow`s, ≈ 8 ms a mail here:
# it made DKIM most of delivery's CPU). PKCS#1 v1.5 signatures are deterministic, so OpenSSL's
# (via `cryptography`, ≈ 1 ms) are the very same bytes; `use_openssl_rsa` swaps dkimpy's
# function for one that delegates to it. Called once from the composition root, never at
# import time; a unit test checks both give identical signatures.

_KEYS: dict[int, object] = {}


def _openssl_rsa_sign(hash_obj, private_key: dict) -> bytes:  # noqa: ANN001 - dkimpy's hash
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

    key = _KEYS.get(private_key["modulus"])
    if key is None:
        public = rsa.RSAPublicNumbers(private_key["publicExponent"], private_key["modulus"])
        key = rsa.RSAPrivateNumbers(
            private_key["prime1"], private_key["prime2"], private_key["privateExponent"],
            private_key["exponent1"], private_key["exponent2"], private_key["coefficient"],
            public,
        ).private_key()
        _KEYS[private_key["modulus"]] = key
    algorithm = {"sha256": hashes.SHA256(), "sha1": hashes.SHA1()}[hash_obj.name]
    return key.sign(hash_obj.digest(), padding.PKCS1v15(), utils.Prehashed(algorithm))  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=8)
def _parsed_key(pem: bytes) -> dict:
    # dkimpy parses the PEM (base64 and ASN.1, in Python) on every signature: ≈ 0.2 ms a mail
    # for the same few bytes. Read-only afterwards (``_openssl_rsa_sign`` only reads it).
    return _PARSE(pem)


_PARSE = dkim.parse_pem_private_key  # type: ignore[attr-defined]


def use_openssl_rsa() -> None:
    """Make dkimpy sign through OpenSSL (same signatures, ≈ 8× less CPU), with the private key
    parsed once instead of once a mail."""
    dkim.RSASSA_PKCS1_v1_5_sign = _openssl_rsa_sign  # type: ignore[attr-defined]
    dkim.parse_pem_private_key = _parsed_key  # type: ignore[attr-defined]
