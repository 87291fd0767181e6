"""Data-only, versioned agent state: the codec every changelogged state goes through, and its checks.

State machines (a user's discovery state, an automation's registry entry, a series monitor, the
whole-picture analyzer and tracker) say what they are with `STATE_KIND`/`STATE_VERSION` and turn
themselves into plain JSON data with `to_state()` / back with `from_state()`. Nothing read back from a
changelog can construct an object the state's own schema does not declare (issue: a pickle in a changelog
ran code as root in every worker).
"""

from rote.state.codec import (
    MAX_STATE_BYTES,
    StateMachine,
    StateReader,
    decode_json,
    decode_state,
    encode_json,
    encode_state,
    model_state,
    state_envelope,
    state_from_envelope,
)

__all__ = [
    "MAX_STATE_BYTES",
    "StateMachine",
    "StateReader",
    "decode_json",
    "decode_state",
    "encode_json",
    "encode_state",
    "model_state",
    "state_envelope",
    "state_from_envelope",
]
