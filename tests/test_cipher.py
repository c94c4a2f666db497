"""The session cipher across a key rotation: which tokens open, and which are sealed with a
retired key (to be sealed again)."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from hypothesis import given
from hypothesis import strategies as st

from gateway.sessions.cipher import Cipher
from tests.support.clock import ManualClock

A, B, C = (Fernet.generate_key().decode() for _ in range(3))
PAYLOAD = {"sid": "s-1", "exp": 1}


def sealed_with(key: str, clock: ManualClock) -> str:
    return Cipher([key], clock=clock).seal(PAYLOAD)


@pytest.mark.parametrize(("keys", "sealed_by", "opens", "current"), [
    pytest.param([A], A, True, True, id="one key"),
    pytest.param([B, A], B, True, True, id="rotating, sealed with the new key"),
    pytest.param([B, A], A, True, False, id="rotating, sealed with the retired key"),
    pytest.param([B], A, False, True, id="retired key dropped: does not open"),
    pytest.param([B, C], A, False, False, id="never a key here: does not open"),
])
def test_a_token_opens_with_any_key_and_is_current_only_with_the_first(
        keys: list[str], sealed_by: str, opens: bool, current: bool) -> None:
    clock = ManualClock()
    cipher = Cipher(keys, clock=clock)
    token = sealed_with(sealed_by, clock)

    assert (cipher.open(token, ttl=60) == PAYLOAD) is opens
    assert cipher.current(token) is current


def test_rekey_changes_what_seals_and_what_opens() -> None:
    clock = ManualClock()
    cipher = Cipher([A], clock=clock)
    old = cipher.seal(PAYLOAD)
    cipher.rekey([B, A])
    new = cipher.seal(PAYLOAD)

    assert Cipher([B], clock=clock).open(new, ttl=60) == PAYLOAD
    assert cipher.open(old, ttl=60) == PAYLOAD
    assert not cipher.current(old)
    cipher.rekey([B])
    assert cipher.open(old, ttl=60) is None


@given(st.text(max_size=300))
def test_current_never_raises_on_any_cookie_value(value: str) -> None:
    """Whatever a client puts in the cookie, `current` answers (opening it decides)."""
    cipher = Cipher([B, A], clock=ManualClock())
    assert cipher.current(value) in {True, False}
