"""Accepted API keys: matched in constant time, and known in logs only by a short hash.

A :class:`KeyRing` keeps the SHA-256 digest of each key, never the key itself. A presented key is
hashed and compared with every digest with :func:`hmac.compare_digest`, all of them every time (no
early exit), so neither the time nor the digests' equal lengths tell how much of a key was right or
which key it nearly matched. :func:`key_id` names a key in logs and rate limits: ``key-`` and the first
eight hex digits of its SHA-256, which identify a key among a few without revealing it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass


def key_id(key: str) -> str:
    """The name of ``key`` in logs, e.g. ``key-3f2a9c1d``."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class KeyRing:
    """The accepted keys as (digest, id) pairs."""

    entries: tuple[tuple[bytes, str], ...]

    @classmethod
    def of(cls, keys: Iterable[str]) -> KeyRing:
        unique = dict.fromkeys(keys)  # the same key given twice is one key
        return cls(tuple((hashlib.sha256(key.encode()).digest(), key_id(key)) for key in unique))

    def identify(self, presented: str | None) -> str | None:
        """The id of the key ``presented`` is, or None when it is none of them (or missing)."""
        if presented is None:
            return None
        digest = hashlib.sha256(presented.encode()).digest()
        found = None
        for accepted, name in self.entries:  # every key, even after a match
            if hmac.compare_digest(digest, accepted):
                found = name
        return found
