"""RFC 6962 / RFC 9162 Merkle tree math: hashes, proof plans and proof verification.

Pure functions, no storage. A node is named by ``(level, index)``: it covers the leaves
``[index * 2**level, (index + 1) * 2**level)``. Only *perfect* subtrees have names; the hash of any
other range the RFC needs (a right-hand subtree that is not full) is the right fold of the perfect
subtrees that tile it (:func:`range_nodes` + :func:`fold`). That is what lets storage keep only
perfect-subtree hashes: appending leaf ``n`` completes at most ``log2(n)`` of them, and every root
or proof for any tree size combines ``O(log n)`` stored hashes.

Proof plans (:func:`inclusion_plan`, :func:`consistency_plan`) list, for each proof element, the
nodes whose fold is that element; callers fetch those hashes however they store them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from vigil.ledger.errors import ProofError

HASH_SIZE = 32
NodeId = tuple[int, int]
"""``(level, index)`` of a perfect subtree."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""Root hash of the empty tree (RFC 9162 §2.1.1: the hash of the empty string)."""


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def fold(hashes: Sequence[bytes]) -> bytes:
    """Hash of a range from its perfect subtrees (left to right, decreasing sizes)."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def _largest_power_of_two_below(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_nodes(begin: int, end: int) -> list[NodeId]:
    """Tile ``[begin, end)`` with maximal aligned perfect subtrees, left to right."""
    if begin < 0 or end < begin:
        raise ProofError(f"merkle: invalid range [{begin}, {end})")
    out: list[NodeId] = []
    while begin < end:
        level = (begin & -begin).bit_length() - 1 if begin else (end - begin).bit_length() - 1
        while begin + (1 << level) > end:
            level -= 1
        out.append((level, begin >> level))
        begin += 1 << level
    return out


def root_nodes(size: int) -> list[NodeId]:
    """The perfect subtrees whose fold is the root of a tree of ``size`` leaves."""
    return range_nodes(0, size)


def inclusion_plan(index: int, size: int) -> list[list[NodeId]]:
    """Nodes for each element of the audit path of leaf ``index`` in a tree of ``size``.

    RFC 9162 §2.1.3.1 ``PATH(m, D[n])``, elements ordered from the leaf upwards.
    """
    if not 0 <= index < size:
        raise ProofError(f"merkle: leaf index {index} is outside a tree of size {size}")
    out: list[list[NodeId]] = []
    begin, n, m = 0, size, index
    while n > 1:
        k = _largest_power_of_two_below(n)
        if m < k:
            out.append(range_nodes(begin + k, begin + n))
            n = k
        else:
            out.append(range_nodes(begin, begin + k))
            begin, n, m = begin + k, n - k, m - k
    out.reverse()
    return out


def consistency_plan(old_size: int, new_size: int) -> list[list[NodeId]]:
    """Nodes for each element of the consistency proof from ``old_size`` to ``new_size``.

    RFC 9162 §2.1.4.1 ``PROOF(m, D[n])``; empty when ``old_size`` is 0 or equals ``new_size``.
    """
    if not 0 <= old_size <= new_size:
        raise ProofError(f"merkle: no consistency proof from size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    out: list[list[NodeId]] = []
    begin, n, m, whole = 0, new_size, old_size, True
    while m != n:
        k = _largest_power_of_two_below(n)
        if m <= k:
            out.append(range_nodes(begin + k, begin + n))
            n = k
        else:
            out.append(range_nodes(begin, begin + k))
            begin, n, m, whole = begin + k, n - k, m - k, False
    if not whole:
        out.append(range_nodes(begin, begin + m))
    out.reverse()
    return out


def plan_ids(plan: Iterable[list[NodeId]]) -> set[NodeId]:
    return {node for element in plan for node in element}


def resolve_plan(plan: Sequence[list[NodeId]], hashes: Mapping[NodeId, bytes]) -> list[bytes]:
    """Turn a proof plan into proof hashes, given the hashes of the nodes it names."""
    try:
        return [fold([hashes[node] for node in element]) for element in plan]
    except KeyError as exc:
        raise ProofError(f"merkle: node {exc.args[0]} is missing from storage") from None


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` show ``leaf`` at ``index`` in the tree ``root``?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0 or len(p) != HASH_SIZE:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> bool:
    """RFC 9162 §2.1.4.2: is the tree ``old_root`` a prefix of the tree ``new_root``?"""
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof
    if not proof or any(len(p) != HASH_SIZE for p in proof):
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root a valid inclusion proof implies (used to name what a proof claims)."""
    if not 0 <= index < size:
        raise ProofError(f"merkle: leaf index {index} is outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("merkle: inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("merkle: inclusion proof is too short")
    return r


@dataclass
class CompactRange:
    """The right edge of a growing tree: the perfect subtrees tiling ``[begin, end)``.

    ``append`` returns the perfect subtrees it completes, so storage can persist exactly those.
    With ``begin == 0`` the fold of the frontier is the tree root (RFC 6962 MTH).
    """

    begin: int = 0
    end: int = 0
    frontier: list[tuple[int, bytes]] = field(default_factory=list)  # (level, hash), left to right

    @classmethod
    def from_hashes(cls, begin: int, end: int, hashes: Sequence[bytes]) -> CompactRange:
        nodes = range_nodes(begin, end)
        if len(nodes) != len(hashes):
            raise ProofError(
                f"merkle: range [{begin}, {end}) needs {len(nodes)} hashes, got {len(hashes)}"
            )
        return cls(begin, end, [(lvl, h) for (lvl, _), h in zip(nodes, hashes, strict=True)])

    def append(self, leaf: bytes, on_node: Callable[[int, int, bytes], None] | None = None) -> None:
        """Add a leaf hash; ``on_node(level, index, hash)`` sees every completed parent node."""
        index = self.end
        self.end += 1
        level, h = 0, leaf
        frontier = self.frontier
        while frontier and frontier[-1][0] == level and (index & 1):
            _, left = frontier.pop()
            h = node_hash(left, h)
            level += 1
            index >>= 1
            if on_node is not None:
                on_node(level, index, h)
        frontier.append((level, h))

    def hashes(self) -> list[bytes]:
        return [h for _, h in self.frontier]

    def root(self) -> bytes:
        if self.begin != 0:
            raise ProofError("merkle: a compact range that does not start at 0 has no tree root")
        return fold(self.hashes())
