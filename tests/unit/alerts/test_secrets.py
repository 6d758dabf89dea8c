"""Receiver secrets are stored encrypted and read back only with the configured key."""

import pytest
from liftwatch.alerts.secrets import SecretBox, SecretUnreadable, is_sealed

KEY = "k" * 32
OTHER = "o" * 40


def test_a_sealed_secret_opens_with_its_key_and_looks_different_each_time() -> None:
    box = SecretBox(KEY)
    first, second = box.seal("hmac-key-0123456789"), box.seal("hmac-key-0123456789")
    assert is_sealed(first) and first != second  # a random nonce per value
    assert "hmac-key" not in first
    assert box.open(first) == box.open(second) == "hmac-key-0123456789"


def test_a_wrong_key_or_tampering_is_refused_not_misread() -> None:
    sealed = SecretBox(KEY).seal("hmac-key-0123456789")
    with pytest.raises(SecretUnreadable):
        SecretBox(OTHER).open(sealed)
    with pytest.raises(SecretUnreadable):
        SecretBox(None).open(sealed)
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(SecretUnreadable):
        SecretBox(KEY).open(tampered)
    with pytest.raises(SecretUnreadable):
        SecretBox(KEY).open("v1:garbage")


def test_rotation_reads_the_previous_key_and_says_what_to_rewrite() -> None:
    old = SecretBox(OTHER).seal("s" * 20)
    rotating = SecretBox(KEY, previous=OTHER)
    assert rotating.open(old) == "s" * 20
    assert rotating.needs_sealing(old) and rotating.needs_sealing("plain-legacy-secret")
    assert not rotating.needs_sealing(rotating.seal("s" * 20))


def test_plain_legacy_values_are_read_as_they_are_and_a_short_key_is_refused() -> None:
    assert SecretBox(KEY).open("plain-legacy-secret") == "plain-legacy-secret"
    assert SecretBox(None).seal("x" * 16) == "x" * 16  # no key configured: stored as given
    with pytest.raises(ValueError, match="at least 32"):
        SecretBox("short").seal("x" * 16)
