"""Bad input and dead brokers through the real CLI: one line, a non-zero exit, no traceback, the previous
`.rote/last-run` archive untouched, and nothing valid lost.

Each command runs as a user runs it (`python -m rote.cli ...`, a subprocess), against a state folder that
already holds a previous run's archive; the archive's bytes are compared before and after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).resolve().parent / "data" / "uilogs"
ROTE = [sys.executable, "-m", "rote.cli"]
DEAD = "kafka://127.0.0.1:1"  # nothing listens on port 1


def rote(
    *args: str, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ROTE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "120", **(env or {})},
    )


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A state folder with a previous good archive in it."""
    last = tmp_path / "state" / "last-run"
    last.mkdir(parents=True)
    (last / "candidates.jsonl").write_text('{"from": "the previous run"}\n')
    (last / "run.log").write_text("previous run\n")
    return tmp_path / "state"


def one_line_failure(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    err = proc.stderr.strip()
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    assert len(err.splitlines()) == 1, f"expected one line, got: {err[-2000:]!r}"
    assert "Traceback" not in proc.stderr and "\x1b[" not in proc.stderr
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def _bad_files(tmp: Path) -> dict[str, tuple[Path, str]]:
    files = {}
    empty = tmp / "empty.csv"
    empty.write_bytes(b"")
    files["empty"] = (empty, "empty.csv is empty")
    wrong = tmp / "wrong.csv"
    wrong.write_text("name,age,city\nann,31,Lyon\nbob,42,Graz\n")
    files["wrong columns"] = (wrong, "no time column")
    binary = tmp / "photo.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 64)
    files["binary"] = (binary, "looks binary")
    huge = tmp / "huge.csv"
    huge.write_bytes(b"timeStamp," + b"x" * 3_000_000)
    files["one huge line"] = (huge, "without a line break")
    clocks = tmp / "clocks.csv"
    clocks.write_text("timestamp,activity\n1970-01-01T00:00:00Z,open\n2099-01-01T00:00:00Z,save\n")
    files["only implausible times"] = (clocks, "has no valid event")
    # rows with values to pseudonymise, none valid: redacting them made the key file, and a refused run
    # left it behind (a new user's US-dated export)
    us = tmp / "us.csv"
    us.write_text("timestamp,activity,value\n11/03/2026 2:05:07 PM,type,ann.lopez@example.org\n")
    files["no readable time, with values"] = (us, "--time-format MDY")
    return files


@pytest.mark.parametrize(
    "kind",
    [
        "empty",
        "wrong columns",
        "binary",
        "one huge line",
        "only implausible times",
        "no readable time, with values",
    ],
)
def test_rote_run_refuses_bad_input_in_one_line_and_keeps_the_last_archive(
    kind: str, state: Path, tmp_path: Path
) -> None:
    path, needle = _bad_files(tmp_path)[kind]
    before = snapshot(state)
    proc = rote("run", "--once", "--metrics-port", "0", "--state-dir", str(state), "--replay", str(path))
    one_line_failure(proc, 2, "rote run:", needle)
    assert snapshot(state) == before  # nothing started, nothing written


def test_eval_discovery_refused_leaves_no_key(tmp_path: Path) -> None:
    """`rote eval discovery` on a file with values and no readable time: refused, and (its file read and
    redacted twice) no pseudonym key left in the state folder, as for `rote run`."""
    path, needle = _bad_files(tmp_path)["no readable time, with values"]
    state = tmp_path / "evalstate"
    proc = rote("eval", "discovery", str(path), "--format", "csv", env={"ROTE_STATE_DIR": str(state)})
    assert proc.returncode == 2 and needle in proc.stderr, proc.stderr[-2000:]
    assert not state.exists() or not any(state.rglob("*")), list(state.rglob("*"))


def test_a_refused_run_keeps_a_key_another_process_made_meanwhile(tmp_path: Path) -> None:
    """Only a key this process wrote is removed: one another process sharing the state folder created
    during the refused read is theirs, and in use."""
    from rote.privacy.default import no_new_key_unless_done

    key = tmp_path / "shared" / "pseudonym.key"
    with pytest.raises(RuntimeError), pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROTE_STATE_DIR", str(tmp_path / "shared"))
        with no_new_key_unless_done():
            key.parent.mkdir(mode=0o700)
            key.write_text("0" * 64 + "\n")  # as another process's load_key would
            raise RuntimeError("the file is refused")
    assert key.exists()


def test_rote_run_refuses_a_missing_file_and_a_bad_delimiter(state: Path) -> None:
    proc = rote("run", "--once", "--state-dir", str(state), "--replay", str(state / "nope.csv"))
    one_line_failure(proc, 2, "cannot read", "nope.csv")
    # the log as an argument, as `rote eval discovery` takes it, is the same log
    proc = rote("run", str(state / "nope.csv"), "--once", "--state-dir", str(state))
    one_line_failure(proc, 2, "cannot read", "nope.csv")
    proc = rote("run", "a.csv", "--replay", "b.csv", "--once", "--state-dir", str(state))
    assert proc.returncode == 2 and "two logs given" in proc.stderr and "Traceback" not in proc.stderr
    proc = rote("run", "--once", "--state-dir", str(state), "--delimiter", ";;")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "delimiter" in proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["produce", str(DATA / "bosco_log1_head.csv"), "--broker", DEAD],
        ["worker", "--broker", DEAD, "--metrics-port", "0"],
        ["run", "--once", "--broker", DEAD, "--metrics-port", "0"],
    ],
    ids=["produce", "worker", "run"],
)
def test_broker_down_is_one_line_exit_3_and_keeps_the_last_archive(args: list[str], state: Path) -> None:
    before = snapshot(state / "last-run")
    proc = rote(*args, "--state-dir", str(state)) if args[0] == "run" else rote(*args)
    one_line_failure(proc, 3, "broker", "127.0.0.1:1")
    assert snapshot(state / "last-run") == before


def test_sandbox_serve_with_the_broker_down_is_one_line() -> None:
    proc = rote(
        "sandbox",
        "serve",
        "--bootstrap",
        "127.0.0.1:1",
        "--metrics-port",
        "0",
        env={"ROTE_RESULT_KEY": "k" * 32},
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "127.0.0.1:1" in proc.stderr and len(proc.stderr.strip().splitlines()) <= 2, proc.stderr


def _jsonl_with_a_30mb_event(path: Path, n: int = 40) -> int:
    lines = []
    for i in range(n):
        lines.append(
            json.dumps(
                {
                    "event_id": f"e{i}",
                    "user_id": "ana",
                    "timestamp": f"2024-05-01T09:{i // 60:02d}:{i % 60:02d}Z",
                    "app": "Excel",
                    "action_type": "copyCell" if i % 2 == 0 else "paste",
                    "target": {"cell": f"A{i // 2 + 2}"} if i % 2 == 0 else {"field": "Name"},
                    "value": f"v{i // 2}" if i else "ana@example.org",  # pseudonymised: the key is made
                }
            )
        )
    big = json.dumps(
        {
            "event_id": "huge",
            "user_id": "ana",
            "timestamp": "2024-05-01T10:00:00Z",
            "app": "Excel",
            "action_type": "paste",
            "value": "x" * (30 * 1024 * 1024),
        }
    )
    lines.insert(n // 2, big)
    path.write_text("\n".join(lines) + "\n")
    return len(big)


@pytest.mark.integration
@pytest.mark.tansu
def test_produce_dead_letters_a_30mb_event_and_sends_every_valid_one(
    tansu_broker: Any, tmp_path: Path
) -> None:
    from kafka import KafkaConsumer, TopicPartition

    from rote.streams.schemas import DeadLetter, decode

    log = tmp_path / "big.jsonl"
    size = _jsonl_with_a_30mb_event(log)
    proc = rote("produce", str(log), "--broker", f"kafka://{tansu_broker.bootstrap}", "--format", "jsonl")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"sent": 40, "rejected": 1, "failed": 0}
    assert "1 invalid (dead-lettered)" in proc.stderr and "Traceback" not in proc.stderr
    consumer = KafkaConsumer(
        bootstrap_servers=tansu_broker.bootstrap, consumer_timeout_ms=3000, enable_auto_commit=False
    )
    tp = TopicPartition("dead-letters", 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    letters = [decode(DeadLetter, m.value) for m in consumer if b"big.jsonl" in m.value]
    consumer.close()
    assert letters, "the oversized event must be in dead-letters"
    letter = letters[-1]
    assert letter.agent == "importer" and letter.payload_bytes == size
    assert letter.reason.startswith("big.jsonl line 21: 30.0 MB, over the 512 KB per-event cap")
    assert len(letter.payload) == 64 * 1024


@pytest.mark.integration
@pytest.mark.slow
def test_run_with_a_30mb_event_replays_the_rest_and_dead_letters_it(state: Path, tmp_path: Path) -> None:
    log = tmp_path / "big.jsonl"
    _jsonl_with_a_30mb_event(log)
    proc = rote(
        "run",
        "--once",
        "--json",
        "--no-inject",
        "--metrics-port",
        "0",
        "--state-dir",
        str(state),
        "--replay",
        str(log),
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["events_in"] == 40 and summary["rows_rejected"] == 1 and summary["error"] is None
    assert summary["import"]["invalid"] == {"too large": 1}
    letters = [json.loads(x) for x in (state / "last-run" / "dead-letters.jsonl").read_text().splitlines()]
    importer = [x for x in letters if x["agent"] == "importer"]
    assert len(importer) == 1 and "30.0 MB, over the 512 KB per-event cap" in importer[0]["reason"]
    assert "previous run" not in (state / "last-run" / "run.log").read_text()  # the new archive is in place
    assert (state / "pseudonym.key").is_file()  # the key is kept in the state dir given, not ./.rote
    assert summary["archive_needs_from"] is True  # the caller's shell has no ROTE_STATE_DIR=state


@pytest.mark.integration
@pytest.mark.slow
def test_a_run_that_times_out_exits_1_and_keeps_the_previous_archive(state: Path) -> None:
    before = snapshot(state / "last-run")
    proc = rote(
        "run",
        "--once",
        "--json",
        "--metrics-port",
        "0",
        "--state-dir",
        str(state),
        "--timeout",
        "3",
        timeout=600,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["timed_out"] and summary["archive"].endswith("failed-run")
    assert snapshot(state / "last-run") == before
    assert (state / "failed-run" / "run.log").is_file()


def test_leave_does_not_wait_forever_for_a_thread_left_running() -> None:
    """A run stopped during Faust's start-up left the Kafka client's thread polling a broker that was gone,
    and the process never exited after its summary (the timeout test above hung in CI). The generator's
    worker process (it holds the run's stdout) must be gone too, or reading the output to its end would
    wait for it."""
    script = (
        "import concurrent.futures, multiprocessing, threading, time\n"
        "from rote.pipeline.run import leave\n"
        "pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('spawn'))\n"
        "assert pool.submit(abs, -1).result() == 1\n"
        "threading.Thread(target=time.sleep, args=(3600,), name='stuck-client').start()\n"
        "print('summary', flush=True)\n"
        "leave(1, wait_seconds=1)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stdout == "summary\n", (proc.returncode, proc.stdout, proc.stderr)
    assert "not waiting for threads: stuck-client" in proc.stderr
    # a run that ends cleanly exits at once, as usual
    clean = (
        "import concurrent.futures, multiprocessing\n"
        "from rote.pipeline.run import leave\n"
        "pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('spawn'))\n"
        "assert pool.submit(abs, -1).result() == 1\n"
        "leave(0, wait_seconds=30)\n"
        "print('after')\n"
    )
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", clean], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "after\n", proc.stderr
    assert time.monotonic() - started < 20, "a clean exit must not wait for the exit watchdog"


@pytest.mark.integration
@pytest.mark.tansu
def test_worker_exits_within_its_grace_when_the_broker_is_gone_at_sigterm(tmp_path: Path) -> None:
    """Faust waits for a vanished broker without limit at shutdown; `rote worker` gives it
    ROTE_SHUTDOWN_GRACE_SECONDS from the signal on: it stops cleanly within it (0), or exits 1 with one line
    (it used to need SIGKILL)."""
    import signal
    import time
    import urllib.request

    from rote.brokers import TansuBroker, TansuConfig, free_port

    port = free_port()
    log = tmp_path / "worker.log"
    with TansuBroker(TansuConfig(work_dir=tmp_path / "tansu")) as broker:
        env = {
            **os.environ,
            "ROTE_APP_ID": "rote-grace",
            "ROTE_STATE_DIR": str(tmp_path / "state"),
            "ROTE_SHUTDOWN_GRACE_SECONDS": "3",
            "ROTE_RESULT_KEY": "grace-test-result-key-" + "k" * 16,
        }
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*ROTE, "worker", "--broker", f"kafka://{broker.bootstrap}", "--metrics-port", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # up: its metrics answer and its agents are subscribed
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                        if b"rote_consumer_lag_messages{" in r.read():
                            break
                except OSError:
                    pass
                assert proc.poll() is None, log.read_text()[-3000:]
                time.sleep(0.5)
        except BaseException:
            proc.kill()
            raise
    # the broker is gone now
    began = time.monotonic()
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        code = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"the worker ignored SIGTERM for 60 s; log:\n{log.read_text()[-3000:]}")
    took = time.monotonic() - began
    text = log.read_text()
    print(f"worker exit {code} after {took:.1f} s")
    assert took < 30, f"took {took:.1f} s"
    assert code in (0, 1), text[-3000:]
    if code == 1:
        assert "shutdown still waiting after 3 s" in text
    assert "Traceback" not in text.split("shutdown still waiting")[-1]


def test_an_action_map_naming_an_unknown_rote_action_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("time;action\n2024-01-08T09:00:00Z;Kopieren\n", encoding="utf-8")
    proc = rote("eval", "discovery", str(path), "--action-map", "Kopieren=kopy")
    assert proc.returncode == 2 and "'kopy' is not an action rote knows" in proc.stderr
    proc = rote("eval", "discovery", str(path), "--action-map", "Kopieren")  # no =, and not a file
    assert proc.returncode == 2 and "--action-map" in proc.stderr and "Traceback" not in proc.stderr
