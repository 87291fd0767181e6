"""rote's detectors against well-kept libraries on the same synthetic corpus: recall, precision, cost.

The libraries are optional (`pip install rote[privacy-compare]`): Microsoft Presidio's pattern
recognizers (used without an NLP model: the recognizers' own regular expressions, check digits and
phonenumbers' matcher) and DataFog's regex engine. Every detector is scored the same way:

* a corpus case is caught when every identifier in it lies inside the detector's spans (so a card
  number of which four digits are left in clear is a miss);
* precision counts the detector's spans that touch no identifier, over the positives and the negatives
  (dates, amounts, order numbers ...), as false positives;
* cost is CPU microseconds per text, single-threaded, in this process.

Presidio returns scores; we count every span it returns (threshold 0), which is its most generous recall.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

from rote.privacy.corpus import Case, negatives, positives
from rote.privacy.detect import TEXT_CLASSES, scan

Spans = list[tuple[int, int]]
Detector = Callable[[str], Spans]


def rote_detector() -> Detector:
    classes = frozenset(TEXT_CLASSES)

    def detect(text: str) -> Spans:
        return [(f.start, f.end) for f in scan(text, classes)]

    return detect


#: The Presidio recognizers that cover our kinds (no model needed).
_PRESIDIO = (
    "EmailRecognizer",
    "PhoneRecognizer",
    "CreditCardRecognizer",
    "IbanRecognizer",
    "UsSsnRecognizer",
    "UkNinoRecognizer",
    "EsNifRecognizer",
    "EsNieRecognizer",
    "ItFiscalCodeRecognizer",
    "InAadhaarRecognizer",
    "CaSinRecognizer",
    "IpRecognizer",
    "MacAddressRecognizer",
)


def presidio_detector() -> Detector | None:
    """Presidio's pattern recognizers, or None when presidio-analyzer is not installed."""
    try:
        import tldextract
        from presidio_analyzer import predefined_recognizers as pr
        from presidio_analyzer.predefined_recognizers.generic import email_recognizer
    except ImportError:
        return None
    # The e-mail recognizer checks domains with tldextract, which would fetch the public suffix list from
    # the network on first use; the snapshot bundled with tldextract is used instead.
    # Typed as Any: presidio's own annotation of this module attribute differs between its releases.
    module: Any = email_recognizer
    module.tldextract = SimpleNamespace(extract=tldextract.TLDExtract(suffix_list_urls=()))
    recognizers: list[Any] = []
    for name in _PRESIDIO:
        cls = getattr(pr, name, None)
        if cls is None:
            continue
        if name == "PhoneRecognizer":
            regions = ("US", "GB", "DE", "FR", "AU", "IN", "ES", "BR", "JP", "CA", "IT", "NL")
            recognizers.append(cls(supported_regions=regions))
        else:
            recognizers.append(cls())

    def detect(text: str) -> Spans:
        spans: Spans = []
        for r in recognizers:
            for res in r.analyze(text, entities=r.supported_entities, nlp_artifacts=None) or ():
                spans.append((res.start, res.end))
        return spans

    return detect


def datafog_detector() -> Detector | None:
    """DataFog's regex engine, or None when datafog is not installed (its telemetry is forced off)."""
    os.environ.setdefault("DATAFOG_NO_TELEMETRY", "1")
    try:
        import datafog
    except ImportError:
        return None

    def detect(text: str) -> Spans:
        return [(e.start, e.end) for e in datafog.scan(text, engine="regex").entities]

    return detect


def _covered(text: str, value: str, spans: Spans) -> bool:
    start = text.find(value)
    if start < 0:
        return False
    covered: set[int] = set()
    for a, b in spans:
        covered.update(range(max(a, start), min(b, start + len(value))))
    needed = {i for i in range(start, start + len(value)) if text[i].isalnum()}
    return needed <= covered


def evaluate(detect: Detector, cases: Sequence[Case], negs: Sequence[str]) -> dict[str, Any]:
    """Recall per kind, precision over spans, negatives touched, and CPU us per text."""
    total: Counter[str] = Counter()
    caught: Counter[str] = Counter()
    tp = fp = 0
    neg_hit = 0
    started = time.process_time()
    results = [(c, detect(c.text)) for c in cases]
    neg_results = [(n, detect(n)) for n in negs]
    cpu = time.process_time() - started
    for case, spans in results:
        total[case.kind] += 1
        if all(_covered(case.text, p, spans) for p in case.pii):
            caught[case.kind] += 1
        pii_spans = [(case.text.find(p), case.text.find(p) + len(p)) for p in (*case.pii, *case.also)]
        for a, b in spans:
            if any(a < pb and pa < b for pa, pb in pii_spans):
                tp += 1
            else:
                fp += 1
    for _, spans in neg_results:
        fp += len(spans)
        neg_hit += bool(spans)
    n_texts = len(cases) + len(negs)
    return {
        "recall": {k: round(caught[k] / total[k], 4) for k in sorted(total)},
        "recall_all": round(sum(caught.values()) / max(sum(total.values()), 1), 4),
        "precision": round(tp / (tp + fp), 4) if tp + fp else None,
        "negatives_touched": neg_hit,
        "us_per_text": round(cpu / n_texts * 1e6, 1),
    }


def compare(*, seed: int = 7, subsample: int = 1) -> dict[str, Any]:
    """Every available detector on one corpus (every `subsample`-th case, to keep quick runs short)."""
    cases = positives(seed)[::subsample]
    negs = negatives(seed + 4)[::subsample]
    out: dict[str, Any] = {"positives": len(cases), "negatives": len(negs)}
    for name, make in (
        ("rote", rote_detector),
        ("presidio", presidio_detector),
        ("datafog", datafog_detector),
    ):
        detector = make()
        out[name] = evaluate(detector, cases, negs) if detector is not None else "not installed"
    return out
