"""KeyRing: every accepted key matches, nothing else does, every digest is compared every time."""

from __future__ import annotations

import hmac
import re

import pytest

from app.core import api_keys
from app.core.api_keys import KeyRing, key_id

KEYS = ["alpha-key-0001", "bravo-key-0002", "charlie-key-0003"]


def test_each_accepted_key_is_identified_by_its_short_hash() -> None:
    ring = KeyRing.of(KEYS)
    for key in KEYS:
        name = ring.identify(key)
        assert name == key_id(key)
        assert re.fullmatch(r"key-[0-9a-f]{8}", name)
        assert key not in name
    assert len({key_id(key) for key in KEYS}) == len(KEYS)


@pytest.mark.parametrize(
    "presented", [None, "", "alpha-key-000", "alpha-key-00011", "ALPHA-KEY-0001", " alpha"]
)
def test_anything_else_is_refused(presented: str | None) -> None:
    assert KeyRing.of(KEYS).identify(presented) is None


def test_an_empty_ring_accepts_nothing() -> None:
    assert KeyRing.of([]).identify("anything") is None


def test_the_ring_holds_digests_not_keys_and_one_entry_per_distinct_key() -> None:
    ring = KeyRing.of([*KEYS, KEYS[0]])
    assert len(ring.entries) == len(KEYS)
    assert not any(key in repr(ring) or key.encode() in digest for key in KEYS for digest, _ in ring.entries)


@pytest.mark.parametrize("presented", [KEYS[0], KEYS[2], "wrong"])
def test_every_key_is_compared_in_constant_time_with_no_early_exit(
    presented: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(api_keys.hmac, "compare_digest", spy)
    ring = KeyRing.of(KEYS)
    ring.identify(presented)
    assert len(calls) == len(KEYS)  # a match on the first key still compares the other two
    assert {b for _, b in calls} == {digest for digest, _ in ring.entries}
    assert all(len(a) == len(b) == 32 for a, b in calls)  # digests: the key's length is not compared
