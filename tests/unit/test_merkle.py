"""Merkle trees (RFC 9162 §2.1) against the published reference vectors of Certificate
Transparency: the roots of the first 1…8 reference leaves, and every inclusion proof."""

import hashlib

import pytest

from bsm_shared.contract import merkle

# The reference leaves and roots (RFC 6962 / 9162 implementations' shared test data).
LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f")]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


@pytest.mark.parametrize("n", range(1, 9))
def test_the_root_of_the_first_n_reference_leaves_is_the_published_one(n):
    assert merkle.root([merkle.leaf_hash(x) for x in LEAVES[:n]]).hex() == ROOTS[n - 1]


def test_the_empty_tree_is_the_hash_of_nothing():
    assert merkle.root([]) == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("n", [*range(1, 34), 100, 500])
def test_every_inclusion_proof_leads_to_the_root_and_no_other_leaf_does(n):
    leaves = [merkle.leaf_hash(f"event-{i}".encode()) for i in range(n)]
    top = merkle.root(leaves)
    proofs = merkle.all_inclusion_proofs(leaves)
    for i in range(n):
        if n <= 33:
            assert proofs[i] == merkle.inclusion_proof(i, leaves)
        assert merkle.root_from_proof(leaves[i], i, n, proofs[i]) == top
        if n > 1:
            assert merkle.root_from_proof(leaves[(i + 1) % n], i, n, proofs[i]) != top


def test_a_proof_of_the_wrong_length_or_index_is_refused():
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(5)]
    proof = merkle.inclusion_proof(2, leaves)
    with pytest.raises(merkle.ProofError):
        merkle.root_from_proof(leaves[2], 2, 5, proof[:-1])
    with pytest.raises(merkle.ProofError):
        merkle.root_from_proof(leaves[2], 2, 5, [*proof, proof[0]])
    with pytest.raises(merkle.ProofError):
        merkle.root_from_proof(leaves[2], 5, 5, proof)
