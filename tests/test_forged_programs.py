"""A topic writer cannot get a program of their own making rendered, tested or counted by a real worker.

Attack sweep of 2026-12-02: anyone who could write `automations` published their own program (read a
private file, submit it to their host) with test cases it passes; the sandbox signed `passed`, the registry
verified it and the executor ran it. A forged candidate would have had rote's own generator render such a
program. Now the task identifier signs candidates and the generator automations (rote.security.verdicts),
and every agent that acts on them verifies: here a real worker on Tansu meets unsigned and wrongly keyed
candidates and automations, dead-letters each with the reason, renders nothing from them and keeps none in
its registry. (The sandbox service and the executor are checked directly in test_sandbox_service.py and
test_runner_service.py.)
"""

from __future__ import annotations

import base64
import json
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from test_pipeline import start_worker, stop_worker, wait_for
from test_registry import CFG, file_candidate

from rote.brokers import TansuBroker, TansuConfig, create_topics, free_port
from rote.generator import generate
from rote.security.verdicts import sign
from rote.streams.schemas import RunMetric, encode
from rote.streams.topics import AUTOMATIONS, CANDIDATES, CATALOGUE, DEAD_LETTERS, METRICS

pytestmark = [pytest.mark.integration, pytest.mark.tansu, pytest.mark.slow]

OTHER_KEY = b"not-the-workers-key-but-32-bytes-long"
#: the key `test_pipeline.start_worker` gives its workers
WORKER_KEY = ("restart-test-result-key-" + "k" * 16).encode()


def _topic(bootstrap: str, name: str, partitions: int) -> list[Any]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=1500)
    parts = [TopicPartition(name, p) for p in range(partitions)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    out = list(consumer)
    consumer.close()
    return out


def _letters(bootstrap: str) -> list[dict[str, Any]]:
    return [json.loads(m.value) for m in _topic(bootstrap, DEAD_LETTERS.name, DEAD_LETTERS.partitions)]


def test_a_worker_renders_verifies_and_counts_nothing_it_did_not_sign(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    candidate = file_candidate(n=12)  # scores well above the generator's threshold: it would be rendered
    forged_candidates = {
        "c-unsigned": candidate.model_copy(update={"candidate_id": "c-unsigned"}),
        "c-other-key": sign(candidate.model_copy(update={"candidate_id": "c-other-key"}), OTHER_KEY),
    }
    program = generate(candidate, config=CFG)
    forged_automations = {
        "a-unsigned": program.model_copy(update={"automation_id": "a-unsigned"}),
        "a-other-key": sign(program.model_copy(update={"automation_id": "a-other-key"}), OTHER_KEY),
        # rote's own signed program (the worker's key), replayed relabelled as verified: the state is signed
        "a-relabelled": sign(
            program.model_copy(update={"automation_id": "a-relabelled"}), WORKER_KEY
        ).model_copy(update={"state": "verified"}),
    }
    # a run that never happened (three of them degrade a verified automation)
    forged_run = RunMetric(
        run_id="r-forged",
        automation_id="a-metric",
        version=1,
        source="production",
        started_at=datetime.now(UTC),
        duration_seconds=1.0,
        success=False,
    )
    # and one properly signed, re-published under another record key (another partition's state)
    rekeyed = sign(program.model_copy(update={"automation_id": "a-rekeyed"}), WORKER_KEY)
    with TansuBroker(TansuConfig(work_dir=tmp_path / "tansu")) as broker:
        create_topics(broker.bootstrap, CATALOGUE)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, max_request_size=4 << 20)
        for cid, c in forged_candidates.items():
            producer.send(CANDIDATES.name, key=cid.encode(), value=encode(c))
        for aid, a in forged_automations.items():
            producer.send(AUTOMATIONS.name, key=aid.encode(), value=encode(a))
        producer.send(AUTOMATIONS.name, key=b"someone-else", value=encode(rekeyed))
        producer.send(METRICS.name, key=b"a-metric", value=encode(forged_run))
        producer.flush()
        producer.close()
        web = free_port()
        worker = start_worker(broker.bootstrap, tmp_path / "w", log, web_port=web)
        try:
            # each forgery is refused by every agent that reads it: the generator or the registry, and the
            # optimizer feed (which would have counted it in the report)
            def refused() -> bool:
                reasons = [d["reason"] for d in _letters(broker.bootstrap)]
                return sum("signature" in r for r in reasons) >= 13 and any("re-keyed" in r for r in reasons)

            wait_for(refused, 240, lambda: [d["reason"] for d in _letters(broker.bootstrap)], log)
            with urllib.request.urlopen(f"http://127.0.0.1:{web}/automations/", timeout=10) as resp:
                registry = json.loads(resp.read())["automations"]
            automations = _topic(broker.bootstrap, AUTOMATIONS.name, AUTOMATIONS.partitions)
            letters = _letters(broker.bootstrap)
        finally:
            stop_worker(worker)

    assert registry == []  # nothing forged entered the registry
    # the only automations on the topic are the forged ones: nothing was rendered from a forged candidate
    assert sorted(m.key.decode() for m in automations) == sorted([*forged_automations, "someone-else"])
    by_key: dict[tuple[str, str], str] = {}
    for d in letters:
        by_key[(base64.b64decode(d["key_b64"]).decode(), d["agent"])] = d["reason"]
    for cid in forged_candidates:
        assert "candidate" in by_key[(cid, "automation-generator")] and (cid, "optimizer-feed") in by_key
    for aid in forged_automations:
        assert "automation" in by_key[(aid, "automation-registry")] and (aid, "optimizer-feed") in by_key
    assert "has no signature" in by_key[("a-unsigned", "automation-registry")]
    assert "does not verify" in by_key[("a-other-key", "automation-registry")]
    assert "does not verify" in by_key[("a-relabelled", "automation-registry")]
    assert "re-keyed" in by_key[("someone-else", "automation-registry")]
    for agent in (
        "automation-registry",
        "performance-monitor",
        "optimizer-feed",
    ):  # no lifecycle, anomaly, report
        assert "run metric has no signature" in by_key[("a-metric", agent)]
