"""An attacker who can write to the broker writes pickles and garbage to every topic, state changelogs too.

Issue 11: a pickle written to a state changelog ran code as root in every worker (at a worker join, when
the first left, and at every restart). Now state is data-only (rote.state): this test writes a pickle that
would create a marker file, its base64 form and garbage bytes to every topic the cluster has (the catalogue,
every changelog, the internal feed), under the keys real state lives at, and then runs a worker join, the
first worker's exit (a full recovery by the second) and a restart. No code runs, every worker stays up, the
hostile state records are rejected and counted, and the pipeline still learns from valid actions.

Reproduce by hand: docs/security.md ("Hostile records").
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from test_pipeline import candidate_events, start_worker, stop_worker, wait_for

from rote.brokers import TansuBroker, TansuConfig, create_topics, free_port
from rote.importers import bundled_log, iter_records
from rote.streams.fast import encode_batch
from rote.streams.topics import CATALOGUE, USER_ACTIONS

pytestmark = [pytest.mark.integration, pytest.mark.tansu, pytest.mark.slow]


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"id > {self.marker}",))


def _metric(port: int, name: str) -> float:
    """The sum of a metric's series on a worker's endpoint (0 while the worker is still starting)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def _dead_letter_payloads(bootstrap: str) -> set[bytes]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=3000)
    part = TopicPartition("dead-letters", 0)
    consumer.assign([part])
    consumer.seek_to_beginning(part)
    out = set()
    for m in consumer:
        try:  # the attacker wrote to dead-letters too: skip what is not a dead letter
            out.add(base64.b64decode(json.loads(m.value)["payload_b64"]))
        except (ValueError, TypeError, KeyError):
            continue
    consumer.close()
    return out


def _hostile_everywhere(bootstrap: str, marker: Path, keys: list[bytes]) -> int:
    """Write the three hostile payloads under every key to every topic; returns the records written."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    topics = [t for t in admin.list_topics() if not t.startswith("__")]
    admin.close()
    payloads = [
        pickle.dumps(_Exploit(marker)),
        base64.b64encode(pickle.dumps(_Exploit(marker))),
        b"\x00\xffgarbage",
    ]
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    n = 0
    for topic in topics:
        for key in keys:
            for payload in payloads:
                producer.send(topic, key=key, value=payload)
                n += 1
    producer.flush()
    producer.close()
    return n


def test_hostile_records_on_every_topic_run_no_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path, fmt = bundled_log()
    records = [r for r in iter_records(path, fmt=fmt) if r.error is None]
    third = len(records) // 3
    log = tmp_path / "workers.log"

    with TansuBroker(TansuConfig(work_dir=tmp_path / "tansu")) as broker:
        create_topics(broker.bootstrap, CATALOGUE)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5, max_request_size=4 << 20)

        user = str(records[0].payload["user_id"])  # the log's own user column

        def send(recs: list[Any]) -> None:
            for i in range(0, len(recs), 200):
                chunk = [r.payload for r in recs[i : i + 200]]
                producer.send(USER_ACTIONS.name, key=user.encode(), value=encode_batch(user, chunk))
            producer.flush()

        port_a, port_b, port_c, web = free_port(), free_port(), free_port(), free_port()
        send(records[:third])
        first = start_worker(broker.bootstrap, tmp_path / "a", log, metrics_port=port_a)
        a: subprocess.Popen[bytes] | None = first
        b: subprocess.Popen[bytes] | None = None
        c: subprocess.Popen[bytes] | None = None
        try:
            accepted = 'rote_user_actions_total{outcome="accepted"}'
            wait_for(lambda: _metric(port_a, accepted) >= third, 240, "the first third learnt", log)
            time.sleep(3)  # checkpoints and offsets committed
            # Real state keys (the user's discovery state, automation and routine keys) and made-up ones.
            cands = candidate_events(broker.bootstrap)
            keys = [user.encode(), b"all", b"x" * 10, *(f"c:{cid}".encode() for cid, _, _ in cands[:2])]
            keys += [cid.encode() for cid, _, _ in cands[:2]]
            assert _hostile_everywhere(broker.bootstrap, marker, keys) > 100

            second = start_worker(
                broker.bootstrap, tmp_path / "b", log, metrics_port=port_b
            )  # a worker joins
            b = second
            time.sleep(15)
            assert first.poll() is None and second.poll() is None, log.read_text()[-3000:]
            stop_worker(first)  # the first leaves: the second recovers every partition
            a = None
            send(records[third : 2 * third])
            time.sleep(15)
            assert second.poll() is None, log.read_text()[-3000:]
            rejected_b = _metric(port_b, "rote_state_records_rejected_total")
            stop_worker(second)  # a restart: a fresh worker recovers everything from the changelogs
            b = None
            c = start_worker(broker.bootstrap, tmp_path / "c", log, web_port=web, metrics_port=port_c)
            send(records[2 * third :])
            wait_for(
                lambda: _metric(port_c, 'rote_user_actions_total{outcome="accepted"}') > 0,
                240,
                "actions",
                log,
            )
            time.sleep(10)
            assert c.poll() is None, log.read_text()[-3000:]
            rejected_state = rejected_b + _metric(port_c, "rote_state_records_rejected_total")
            dead = _dead_letter_payloads(broker.bootstrap)
            with urllib.request.urlopen(f"http://127.0.0.1:{web}/automations/", timeout=10) as resp:
                assert resp.status == 200 and isinstance(json.loads(resp.read()), dict)
        finally:
            for w in (a, b, c):
                if w is not None:
                    stop_worker(w)
            producer.close()

    assert not marker.exists(), "a hostile record ran code"
    assert rejected_state > 0, f"no hostile state record was seen; log tail:\n{log.read_text()[-3000:]}"
    # the hostile events on the topics agents read were dead-lettered whole, with a reason, nothing run
    assert {b"\x00\xffgarbage", pickle.dumps(_Exploit(marker))} <= dead
