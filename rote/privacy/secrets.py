"""Passwords typed where no field says so: remembered from the password field, hidden everywhere after.

People type a password into the wrong window all the time (a chat box, the user-name field, a search box);
the field says nothing there, the value does. A new user's log (2026-12-02) kept a password typed into a
Teams message box verbatim in `user-actions`. What was typed into a password field is remembered here, as
a keyed digest only (this process's random key, in memory, the last `KEPT`), never as text; the redactor
hides any later text equal to one. Only exact repeats of at least `MIN_CHARS` characters are caught (a PIN
or a quantity would hide ordinary numbers), and only after the password field was seen, in the same
process (the importer at capture, the task identifier at ingress).
"""

from __future__ import annotations

import hashlib
import os

#: Digests kept (the oldest are forgotten first).
KEPT = 4096
#: Shorter values are not remembered.
MIN_CHARS = 6


class SecretMemory:
    def __init__(self) -> None:
        self._digests: dict[bytes, None] = {}
        self._key = os.urandom(16)

    def __bool__(self) -> bool:
        return bool(self._digests)

    def _digest(self, text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), key=self._key, digest_size=16).digest()

    def remember(self, text: str) -> bool:
        """Remember `text`; True if it is new (the caller's memos may hold it as clean text)."""
        if len(text) < MIN_CHARS:
            return False
        digest = self._digest(text)
        if digest in self._digests:
            return False
        self._digests[digest] = None
        if len(self._digests) > KEPT:
            del self._digests[next(iter(self._digests))]
        return True

    def holds(self, text: str) -> bool:
        return len(text) >= MIN_CHARS and self._digest(text) in self._digests
