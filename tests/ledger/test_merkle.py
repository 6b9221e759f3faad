"""RFC 6962 Merkle math: published test vectors and a property test against the reference."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.ledger import reference
from vigil.ledger import merkle
from vigil.ledger.errors import ProofError

# Test vectors of the Certificate Transparency / transparency-dev reference implementations
# (github.com/transparency-dev/merkle, proof/verify_test.go): eight leaf inputs, the roots of the
# trees of sizes 1..8, and known inclusion and consistency proofs.
LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
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
EMPTY_ROOT = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
# (leaf index, tree size, proof); indices are 0-based here (the source lists them 1-based).
INCLUSION = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (0, 1, []),
]
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]


def all_nodes(leaves: list[bytes]) -> dict[merkle.NodeId, bytes]:
    """Every perfect-subtree hash of the tree, as storage would hold it."""
    nodes: dict[merkle.NodeId, bytes] = {}
    edge = merkle.CompactRange()
    for i, data in enumerate(leaves):
        h = merkle.leaf_hash(data)
        nodes[(0, i)] = h
        edge.append(h, lambda lvl, idx, hh: nodes.__setitem__((lvl, idx), hh))
    return nodes


NODES = all_nodes(LEAVES)


def test_empty_root() -> None:
    assert merkle.EMPTY_ROOT.hex() == EMPTY_ROOT
    assert reference.mth([]).hex() == EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_known_roots(size: int) -> None:
    edge = merkle.CompactRange()
    for data in LEAVES[:size]:
        edge.append(merkle.leaf_hash(data))
    assert edge.root().hex() == ROOTS[size - 1]
    ids = merkle.root_nodes(size)
    assert merkle.fold([NODES[n] for n in ids]).hex() == ROOTS[size - 1]
    assert reference.mth(LEAVES[:size]).hex() == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "expected"), INCLUSION)
def test_known_inclusion_proofs(index: int, size: int, expected: list[str]) -> None:
    got = merkle.resolve_plan(merkle.inclusion_plan(index, size), NODES)
    assert [h.hex() for h in got] == expected
    root = bytes.fromhex(ROOTS[size - 1])
    leaf = merkle.leaf_hash(LEAVES[index])
    assert merkle.verify_inclusion(index, size, leaf, got, root)
    assert merkle.root_from_inclusion(index, size, leaf, got) == root
    # corruptions in the style of the reference test suite
    assert not merkle.verify_inclusion(index, size * 2, leaf, got, root)
    assert not merkle.verify_inclusion(index, size, leaf, [*got, root], root)
    assert not merkle.verify_inclusion(index, size, leaf, [root, *got], root)
    assert not merkle.verify_inclusion(index, size, b"WrongLeaf", got, root)
    assert not merkle.verify_inclusion(index, size, leaf, got, merkle.EMPTY_ROOT)
    for i in range(len(got)):
        bad = list(got)
        bad[i] = bytes([bad[i][0] ^ 8]) + bad[i][1:]
        assert not merkle.verify_inclusion(index, size, leaf, bad, root)
    if got:
        assert not merkle.verify_inclusion(index, size, leaf, got[:-1], root)
        assert not merkle.verify_inclusion(index + 1, size, leaf, got, root)


@pytest.mark.parametrize(("m", "n", "expected"), CONSISTENCY)
def test_known_consistency_proofs(m: int, n: int, expected: list[str]) -> None:
    got = merkle.resolve_plan(merkle.consistency_plan(m, n), NODES)
    assert [h.hex() for h in got] == expected
    r1, r2 = bytes.fromhex(ROOTS[m - 1]), bytes.fromhex(ROOTS[n - 1])
    assert merkle.verify_consistency(m, n, got, r1, r2)
    if not got:
        return
    assert not merkle.verify_consistency(m, n, got, r2, r1)
    assert not merkle.verify_consistency(m - 1, n, got, r1, r2)
    assert not merkle.verify_consistency(m + 1, n, got, r1, r2)
    assert not merkle.verify_consistency(m, n * 2, got, r1, r2)
    assert not merkle.verify_consistency(m, n, [], r1, r2)
    assert not merkle.verify_consistency(m, n, got[:-1], r1, r2)
    assert not merkle.verify_consistency(m, n, [*got, r1], r1, r2)
    assert not merkle.verify_consistency(m, n, [got[0], *got], r1, r2)
    for i in range(len(got)):
        bad = list(got)
        bad[i] = bytes([bad[i][0] ^ 16]) + bad[i][1:]
        assert not merkle.verify_consistency(m, n, bad, r1, r2)


def test_trivial_consistency_cases() -> None:
    r = bytes.fromhex(ROOTS[0])
    assert merkle.verify_consistency(0, 0, [], merkle.EMPTY_ROOT, merkle.EMPTY_ROOT)
    assert merkle.verify_consistency(0, 5, [], merkle.EMPTY_ROOT, r)
    assert not merkle.verify_consistency(1, 1, [], r, merkle.EMPTY_ROOT)
    assert not merkle.verify_consistency(2, 1, [], r, r)
    assert not merkle.verify_consistency(1, 1, [r], r, r)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ProofError, match="outside a tree of size 3"):
        merkle.inclusion_plan(3, 3)
    with pytest.raises(ProofError, match="from size 4 to 3"):
        merkle.consistency_plan(4, 3)


@st.composite
def tree_and_indices(draw: st.DrawFn) -> tuple[list[bytes], int, int]:
    n = draw(st.integers(min_value=1, max_value=160))
    leaves = [i.to_bytes(4, "big") + b"x" * (i % 3) for i in range(n)]
    return leaves, draw(st.integers(0, n - 1)), draw(st.integers(0, n))


@settings(max_examples=300, deadline=None)
@given(tree_and_indices())
def test_matches_reference(case: tuple[list[bytes], int, int]) -> None:
    leaves, index, m = case
    n = len(leaves)
    nodes = all_nodes(leaves)
    root = reference.mth(leaves)
    assert merkle.fold([nodes[x] for x in merkle.root_nodes(n)]) == root

    got = merkle.resolve_plan(merkle.inclusion_plan(index, n), nodes)
    assert got == reference.path(index, leaves)
    assert len(got) <= math.ceil(math.log2(n)) if n > 1 else not got
    assert merkle.verify_inclusion(index, n, merkle.leaf_hash(leaves[index]), got, root)

    cons = merkle.resolve_plan(merkle.consistency_plan(m, n), nodes)
    assert cons == reference.proof(m, leaves)
    assert len(cons) <= math.ceil(math.log2(n)) + 1
    old_root = reference.mth(leaves[:m])
    assert merkle.verify_consistency(m, n, cons, old_root, root)
    if cons:
        bad = [bytes([cons[0][0] ^ 1]) + cons[0][1:], *cons[1:]]
        assert not merkle.verify_consistency(m, n, bad, old_root, root)
    if n > 1:
        other = merkle.leaf_hash(b"not " + leaves[index])
        assert not merkle.verify_inclusion(index, n, other, got, root)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 10_000))
def test_range_nodes_tile_the_range(a: int, b: int) -> None:
    begin, end = min(a, b), max(a, b)
    pos = begin
    for level, idx in merkle.range_nodes(begin, end):
        assert idx << level == pos
        pos += 1 << level
    assert pos == end
    assert len(merkle.range_nodes(0, end)) == bin(end).count("1")
