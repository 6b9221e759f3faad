"""Secret formats: API key shape and checksum, password hashing, the install secret."""

from __future__ import annotations

import stat
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from vigil.identity import credentials as c


def test_api_key_shape_and_checksum() -> None:
    keys = {c.new_api_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert key.startswith("vgl_") and len(key) == c.KEY_LENGTH
        assert c.api_key_well_formed(key)
        assert key[4:].isalnum()


def test_random_part_has_at_least_128_bits() -> None:
    random_chars = c.KEY_LENGTH - len(c.KEY_PREFIX) - 6
    assert 62**random_chars >= 2**128


@given(st.integers(min_value=4, max_value=c.KEY_LENGTH - 1), st.sampled_from("0aZ9"))
def test_any_single_character_change_breaks_the_checksum(pos: int, replacement: str) -> None:
    key = "vgl_ABCDEFGHIJKLMNOPQRSTUV" + c._checksum("ABCDEFGHIJKLMNOPQRSTUV")
    assert c.api_key_well_formed(key)
    changed = key[:pos] + replacement + key[pos + 1 :]
    if changed != key:
        assert not c.api_key_well_formed(changed)


@given(st.text(max_size=40))
def test_arbitrary_text_is_not_a_key(text: str) -> None:
    if c.api_key_well_formed(text):  # only a correct checksum passes
        body = text[4:]
        assert c._checksum(body[:22]) == body[22:]


def test_malformed_keys_are_rejected() -> None:
    key = c.new_api_key()
    assert not c.api_key_well_formed(key[:-1])
    assert not c.api_key_well_formed(key + "A")
    assert not c.api_key_well_formed("vgk_" + key[4:])
    assert not c.api_key_well_formed(key[:10] + "-" + key[11:])


def test_passwords_are_argon2id_and_verify() -> None:
    h = c.hash_password("s3cret password")
    assert h.startswith("$argon2id$")
    assert c.verify_password(h, "s3cret password")
    assert not c.verify_password(h, "s3cret passwore")
    assert not c.verify_password(None, "s3cret password")
    assert not c.verify_password("not a hash", "x")


def test_install_secret_is_created_private_and_stable(tmp_path: Path) -> None:
    first = c.install_secret(tmp_path, "jwt")
    path = tmp_path / "keys" / "jwt.secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert c.install_secret(tmp_path, "jwt") == first
    assert len(first) >= 64
    assert c.install_secret(tmp_path, "jwt", configured="x" * 40) == b"x" * 40


def test_recovery_codes_normalise() -> None:
    code = c.new_recovery_code()
    assert len(c.normalise_recovery_code(code)) == 15
    assert c.normalise_recovery_code(code.upper().replace("-", " ")) == c.normalise_recovery_code(
        code
    )
