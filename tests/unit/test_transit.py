import os

import pytest
from cryptography.exceptions import InvalidTag

from bsm_shared.runtime.transit import is_sealed, seal, unseal


def test_a_sealed_address_opens_only_with_the_key_and_for_its_field():
    key = os.urandom(32)
    sealed = seal(key, "ventas@sol.example", "SellerSettingsChanged.customer_service_email")
    assert is_sealed(sealed) and "sol.example" not in sealed
    assert unseal(key, sealed, "SellerSettingsChanged.customer_service_email") == (
        "ventas@sol.example")
    with pytest.raises(InvalidTag):
        unseal(key, sealed, "SellerSettingsChanged.authorized_senders")
    with pytest.raises(InvalidTag):
        unseal(os.urandom(32), sealed, "SellerSettingsChanged.customer_service_email")


def test_plaintext_from_outside_producers_passes_through():
    assert unseal(os.urandom(32), "a@b.example", "x") == "a@b.example"
