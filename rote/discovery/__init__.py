"""The task identifier's pure logic: routine discovery from user-action streams and automation potential.

Streaming API (what the Faust agent calls): `DiscoveryConfig`, `UserState`, `RoutineDiscoverer`
(`learn_one`, `learn_many`, `flush`, `drain_retracted`, `result`); batch helper: `discover` (the same
streaming code over an iterable). See docs/discovery.md.
"""

from __future__ import annotations

from rote.discovery.abstraction import ActionAbstraction
from rote.discovery.candidates import DiscoveredRoutine, DiscoveryResult
from rote.discovery.config import DiscoveryConfig
from rote.discovery.miner import RoutineDiscoverer, discover
from rote.discovery.model import UserState
from rote.discovery.scoring import ScoreConfig

__all__ = [
    "ActionAbstraction",
    "DiscoveredRoutine",
    "DiscoveryConfig",
    "DiscoveryResult",
    "RoutineDiscoverer",
    "ScoreConfig",
    "UserState",
    "discover",
]
