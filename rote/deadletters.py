"""The dead letter of a rejected message, as every consumer writes it: redacted, and small enough to send.

One place for it because three consumers (the agents, the sandbox runner, the production runner) each
built their own: the runners' kept the message whole and unredacted, so a forged automation of 925 kB made
a 1.2 MB letter the producer refused, the service retried the record every 2 s for ever, and a refused run
request's parameters (a typed value, a password) went to `dead-letters` as sent.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from rote.privacy import redact_bytes
from rote.streams.schemas import DeadLetter

#: The most of a rejected message a letter keeps (its size is kept beside): base64 and the envelope must
#: stay under the broker's message limit (1 MiB by default)
KEEP_BYTES = 512 * 1024
#: The most of its key a letter keeps (keys are ids; a huge one is itself the attack)
KEEP_KEY_BYTES = 4096
#: The most of the reason a letter keeps
KEEP_REASON_CHARS = 2000


def dead_letter(
    *,
    topic: str,
    reason: str,
    field: str | None,
    value: bytes,
    key: bytes | None,
    partition: int | None,
    offset: int | None,
    agent: str,
) -> DeadLetter:
    """The letter for `value` rejected on `topic`: its bytes redacted as at capture (a rejected event may
    still hold what a person typed), the first `KEEP_BYTES` of them with `payload_bytes` the size as
    received when they are more, the key's first `KEEP_KEY_BYTES`."""
    size = len(value)
    kept = redact_bytes(bytes(value[:KEEP_BYTES]) if size > KEEP_BYTES else bytes(value))
    if len(kept) > KEEP_BYTES:  # redaction can lengthen a text (a marker for a short secret)
        kept = kept[:KEEP_BYTES]
    return DeadLetter(
        source_topic=topic,
        reason=reason[:KEEP_REASON_CHARS],
        field=field[:KEEP_REASON_CHARS] if field is not None else None,
        payload_b64=base64.b64encode(kept).decode(),
        payload_bytes=size if size > KEEP_BYTES else None,
        key_b64=base64.b64encode(key[:KEEP_KEY_BYTES]).decode() if key is not None else None,
        partition=partition,
        offset=offset,
        received_at=datetime.now(UTC),
        agent=agent,
    )
