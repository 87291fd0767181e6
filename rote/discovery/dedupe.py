"""Which event ids were already seen: a bounded, exact-where-it-matters redelivery filter.

Kafka delivers at least once: after a restart a worker re-reads from its last committed offset, so a user's
events can arrive again, hundreds of events after they were first processed. A redelivered event must
change nothing (it is neither processed again nor counted as "late"), while the set of ids remembered must
stay small whatever the history (the per-user state budget is 20 kB).

How: events are processed in event-time order, so an arriving event is one of three kinds.

* newer than everything processed: new, unless it is waiting in the lateness buffer (checked exactly
  against the ids held there);
* exactly as old as the newest processed event: checked exactly against the ids processed at that instant;
* older: it can no longer be processed either way; only the *counter* it goes to depends on whether it was
  seen. A ring of 16-bit fingerprints of the last `window` ids answers that in 2 bytes an id; a false
  positive (window / 65,536: 0.5% at the default 300) counts a genuinely late event as a duplicate, and never
  drops a new event, because new events never reach the filter.
"""

from __future__ import annotations

import base64
import binascii
import sys
import zlib
from array import array

from rote.errors import StateError

_BIG = sys.byteorder == "big"


def fingerprint(event_id: str) -> int:
    """16 bits of a CRC-32 of the id (stable across processes, unlike `hash`)."""
    return zlib.crc32(event_id.encode("utf-8", "surrogatepass")) & 0xFFFF


class SeenIds:
    """The fingerprints of the last `window` ids, in arrival order (a ring), with a count per fingerprint
    for constant-time membership."""

    __slots__ = ("counts", "pos", "ring", "window")

    def __init__(self, window: int) -> None:
        self.window = max(1, window)
        self.ring = array("H")
        self.pos = 0  # next slot to overwrite once the ring is full
        self.counts: dict[int, int] = {}

    def add(self, event_id: str) -> None:
        fp = zlib.crc32(event_id.encode("utf-8", "surrogatepass")) & 0xFFFF
        counts = self.counts
        ring = self.ring
        if len(ring) < self.window:
            ring.append(fp)
        else:
            old = ring[self.pos]
            c = counts[old] - 1
            if c:
                counts[old] = c
            else:
                del counts[old]
            ring[self.pos] = fp
            self.pos = (self.pos + 1) % self.window
        counts[fp] = counts.get(fp, 0) + 1

    def __contains__(self, event_id: str) -> bool:
        return fingerprint(event_id) in self.counts

    def to_data(self) -> list[object]:
        ring = array("H", self.ring)
        if _BIG:
            ring.byteswap()
        return [self.window, self.pos, base64.b64encode(ring.tobytes()).decode("ascii")]

    @classmethod
    def from_data(cls, data: object) -> SeenIds:
        if type(data) is not list or len(data) != 3:
            raise StateError("invalid discovery state: seen ids must have 3 fields")
        window, pos, text = data
        if type(window) is not int or window < 1 or type(pos) is not int or type(text) is not str:
            raise StateError("invalid discovery state: seen ids")
        try:
            raw = base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise StateError("invalid discovery state: seen ids are not base64") from None
        if len(raw) % 2 or len(raw) // 2 > window:
            raise StateError("invalid discovery state: seen ids have the wrong size")
        out = cls(window)
        out.ring.frombytes(raw)
        if _BIG:
            out.ring.byteswap()
        if not (0 <= pos < window and (pos == 0 or len(out.ring) == window)):
            raise StateError("invalid discovery state: seen ids position")
        out.pos = pos
        for fp in out.ring:
            out.counts[fp] = out.counts.get(fp, 0) + 1
        return out
