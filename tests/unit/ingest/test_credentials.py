"""Terminal credentials: mosquitto-compatible hashes, password file and ACL text."""

from __future__ import annotations

import base64

import pytest
from liftwatch.ingest.credentials import (
    acl_file,
    hash_password,
    is_account_name,
    is_terminal_id,
    new_password,
    password_file,
    verify_password,
)
from liftwatch.ingest.errors import CredentialError


def test_hash_matches_mosquitto_passwd_format() -> None:
    # Produced by `mosquitto_passwd -b pw t1 secret` (mosquitto 2.0.11, 101 iterations).
    reference = (
        "$7$101$EICtDo7c52l2IaKv$"
        "ERIkb7QESRcvBjgQqjdwt2rdwZ5YPJJ9Ds75kIvCbVHLjpHOoV+JfMTZ5omgMtcwzoF3wN4cT2ZHPXz1g72Asg=="
    )
    salt = base64.b64decode("EICtDo7c52l2IaKv")
    assert hash_password("secret", iterations=101, salt=salt) == reference
    assert verify_password("secret", reference)
    assert not verify_password("Secret", reference)


def test_new_passwords_are_random_and_verify() -> None:
    first, second = new_password(), new_password()
    assert first != second and len(first) >= 32
    assert verify_password(first, hash_password(first))
    assert not verify_password(first, "plain")


def test_password_file_lines() -> None:
    assert password_file([("b", "$7$h2"), ("a", "$7$h1")]) == "a:$7$h1\nb:$7$h2\n"


def test_acl_confines_terminals_to_their_own_topics() -> None:
    text = acl_file("r/", [("gw1", "gateway"), ("sim", "publisher")])
    assert "pattern write r/lift/v1/%u/telemetry" in text
    assert "pattern write r/lift/v1/%u/status" in text
    assert "user gw1\ntopic read r/lift/v1/+/telemetry\ntopic read r/lift/v1/+/status" in text
    assert "user sim\ntopic write r/lift/v1/+/telemetry" in text
    assert "pattern read" not in text


@pytest.mark.parametrize("text", ["T1", "a", "ab-C_9", "x" * 64])
def test_terminal_ids_are_not_account_names(text: str) -> None:
    assert is_terminal_id(text) and not is_account_name(text)


@pytest.mark.parametrize("text", ["gateway.1", "sim.load", "a.b.c", "gw_1.x-y"])
def test_account_names_are_not_terminal_ids(text: str) -> None:
    assert is_account_name(text) and not is_terminal_id(text)


@pytest.mark.parametrize("text", ["T1\n", "T1 ", "", "x" * 65, "T/1", "T+1", "T.1\n", "gw:1"])
def test_malformed_terminal_ids(text: str) -> None:
    assert not is_terminal_id(text)


@pytest.mark.parametrize("text", ["gw1", "gateway.1\n", ".gw", "gw.", "gw..1", "gw.+", "g w.1", "a." + "x" * 63])
def test_malformed_account_names(text: str) -> None:
    assert not is_account_name(text)


def test_password_file_refuses_a_user_twice() -> None:
    with pytest.raises(CredentialError, match="gw1"):
        password_file([("gw1", "$7$terminal"), ("T2", "$7$h"), ("gw1", "$7$account")])
