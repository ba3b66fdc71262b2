import os

import pytest
from cryptography.exceptions import InvalidTag

from bsm_shared.runtime.pii import PiiVault


def test_an_address_encrypted_for_a_party_decrypts_only_for_that_party_and_field():
    vault = PiiVault(os.urandom(32))
    key = vault.new_data_key("p1")
    blob = vault.encrypt("p1", key, "email", "ana@example.com")
    assert b"ana@example.com" not in blob
    assert vault.decrypt("p1", key, "email", blob) == "ana@example.com"
    with pytest.raises(InvalidTag):
        vault.decrypt("p1", key, "customer_service_email", blob)
    with pytest.raises(InvalidTag):
        vault.decrypt("p2", key, "email", blob)


def test_another_key_encryption_key_cannot_unwrap_a_party_key():
    key = PiiVault(os.urandom(32)).new_data_key("p1")
    with pytest.raises(InvalidTag):
        PiiVault(os.urandom(32)).encrypt("p1", key, "email", "x@example.com")


def test_the_blind_index_ignores_case_and_surrounding_space_and_depends_on_the_key():
    vault = PiiVault(os.urandom(32))
    assert vault.blind_index(" Ana@Example.com ") == vault.blind_index("ana@example.com")
    assert vault.blind_index("ana@example.com") != PiiVault(os.urandom(32)).blind_index(
        "ana@example.com"
    )
