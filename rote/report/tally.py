"""Test results counted one way in every view: per language, how many ran, passed, and could not run here.

A Bash or AppleScript result marked ``unsupported`` is not a failed test, it is a test that did not run (no
`osascript` on Linux, a step Bash cannot express); counting it as failed made one automation read "5/15"
in one view and "25 of 90" in another. Views show the tests of each automation's current version, the
version that a person would deploy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from rote.report.units import count

LANGUAGE_ORDER = ("python", "bash", "applescript")


@dataclass
class LanguageTally:
    ran: int = 0
    passed: int = 0
    unsupported: int = 0

    @property
    def failed(self) -> int:
        return self.ran - self.passed


@dataclass
class TestTally:
    __test__ = False  # not a pytest class

    by_language: dict[str, LanguageTally] = field(default_factory=dict)

    def add(self, language: str, verdict: str) -> None:
        t = self.by_language.setdefault(language, LanguageTally())
        if verdict == "unsupported":
            t.unsupported += 1
        else:
            t.ran += 1
            t.passed += verdict == "passed"

    @property
    def ran(self) -> int:
        return sum(t.ran for t in self.by_language.values())

    @property
    def passed(self) -> int:
        return sum(t.passed for t in self.by_language.values())

    @property
    def unsupported(self) -> int:
        return sum(t.unsupported for t in self.by_language.values())

    def languages(self) -> list[str]:
        known = [lang for lang in LANGUAGE_ORDER if lang in self.by_language]
        return known + sorted(set(self.by_language) - set(known))

    def text(self) -> str:
        """``python 10 ran, 7 passed · bash 10 unsupported``: not run, because of a platform without the
        interpreter (AppleScript on Linux) or a step the language cannot express (each result says which)."""
        parts = []
        for lang in self.languages():
            t = self.by_language[lang]
            bits = []
            if t.ran:
                bits.append(f"{count(t.ran)} ran, {count(t.passed)} passed")
            if t.unsupported:
                bits.append(f"{count(t.unsupported)} unsupported")
            parts.append(f"{lang} {', '.join(bits)}")
        return " · ".join(parts) or "none"

    def short(self) -> str:
        """``7/10 passed`` (+ ``, 20 unsupported``) for a table cell."""
        if not self.by_language:
            return "–"
        out = f"{self.passed}/{self.ran} passed" if self.ran else "none ran"
        return out + (f", {self.unsupported} unsupported" if self.unsupported else "")

    @classmethod
    def from_dict(cls, data: dict[str, dict[str, int]]) -> TestTally:
        return cls(
            by_language={
                lang: LanguageTally(ran=t["ran"], passed=t["passed"], unsupported=t["unsupported"])
                for lang, t in data.items()
            }
        )

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {
            lang: {"ran": t.ran, "passed": t.passed, "failed": t.failed, "unsupported": t.unsupported}
            for lang in self.languages()
            for t in (self.by_language[lang],)
        }


def tally(verdicts: Iterable[tuple[str, str]]) -> TestTally:
    """A tally of (language, verdict) pairs."""
    out = TestTally()
    for language, verdict in verdicts:
        out.add(language, verdict)
    return out


def current_version_verdicts(test_results: dict[str, dict[str, str]]) -> list[tuple[str, str]]:
    """(language, verdict) pairs of a registry record's `test_results` (case -> language -> verdict)."""
    return [(lang, verdict) for per_lang in test_results.values() for lang, verdict in per_lang.items()]
