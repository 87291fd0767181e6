"""The automation generator: routine candidates in, tested multi-language automations out.

Public API:
    generate(candidate, *, config=None) -> Automation
    build_test_bundle(automation, case, language) -> TestBundle      (sandbox contract)
    verify(automation, case, collected, *, exit_code) -> SpecVerdict
    Registry                                                           (lifecycle and run statistics)
"""

from __future__ import annotations

from rote.generator.bundle import (
    RUNNABLE_LANGUAGES,
    SpecVerdict,
    TestBundle,
    UnsupportedLanguage,
    build_test_bundle,
    runnable_languages,
    verify,
)
from rote.generator.generate import GENERATOR_VERSION, GeneratorConfig, automation_id_for, generate
from rote.generator.replay import replay

__all__ = [
    "GENERATOR_VERSION",
    "RUNNABLE_LANGUAGES",
    "GeneratorConfig",
    "SpecVerdict",
    "TestBundle",
    "UnsupportedLanguage",
    "automation_id_for",
    "build_test_bundle",
    "generate",
    "replay",
    "runnable_languages",
    "verify",
]
