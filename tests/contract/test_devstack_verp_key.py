"""The local stack's secrets file: the mail door's VERP key is delivery's, on a new stack and
added to an existing one on the next `make up` without touching the other keys."""

from bsm_devstack.envfile import read_env_file
from bsm_devstack.keys import ensure_secrets


def test_a_new_stack_gets_the_same_verp_key_for_alias_and_delivery(tmp_path):
    secrets, created = ensure_secrets(tmp_path / "secrets.env")
    assert "BSM_ALIAS_VERP_KEY" in created
    assert secrets["BSM_ALIAS_VERP_KEY"] == secrets["BSM_DELIVERY_VERP_KEY"]


def test_an_existing_stack_gets_the_alias_copy_and_keeps_every_other_key(tmp_path):
    path = tmp_path / "secrets.env"
    first, _ = ensure_secrets(path)
    # A stack made before the door verified return paths: no alias copy in its file.
    lines = [line for line in path.read_text().splitlines()
             if not line.startswith("BSM_ALIAS_VERP_KEY")]
    path.write_text("\n".join(lines) + "\n")
    assert "BSM_ALIAS_VERP_KEY" not in read_env_file(path)
    again, created = ensure_secrets(path)
    assert created == ["BSM_ALIAS_VERP_KEY"]
    assert again["BSM_ALIAS_VERP_KEY"] == first["BSM_DELIVERY_VERP_KEY"]
    assert {k: v for k, v in again.items() if k != "BSM_ALIAS_VERP_KEY"} == {
        k: v for k, v in first.items() if k != "BSM_ALIAS_VERP_KEY"}
