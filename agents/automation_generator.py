"""Automation generator and registry: candidates in, automations out; results and runs kept per automation.

Two agents, because their inputs are keyed differently:
- `generate` reads `candidates` (keyed by candidate id) and renders an automation when a candidate scores
  high enough. A candidate is re-published every time its evidence grows; regenerating (and re-testing in
  the sandbox) on every new occurrence would multiply sandbox work for no new information, so a new version
  is made only when the routine's steps change or its occurrences grew by `regenerate_growth` since the
  version last generated, with no fewer instances to learn from (`should_generate`).
- `registry` reads `automations`, `test-results` and `metrics` (all keyed by automation id, so co-partitioned
  with its table) and keeps each automation's lifecycle and statistics in the `registry` table. When testing
  moves an automation to verified or rejected, the new state is published back to `automations` (a compacted
  topic: its latest event per automation is the registry's view for any consumer).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import multiprocessing
from collections.abc import Iterable
from typing import Any

import faust

from rote import metrics
from rote.agents.app import Topics, state_table
from rote.agents.common import AgentIO, settled_events
from rote.agents.durable import DurableState, read_pending
from rote.agents.outbox import Outbox, automation_identity
from rote.errors import StateError, ValidationError
from rote.generator import generate
from rote.generator.registry import Registry
from rote.security.verdicts import sign, verify, why_not
from rote.state import StateReader, decode_json, encode_json
from rote.streams.schemas import Automation, Candidate, RunMetric, TestResult, decode, encode
from rote.streams.topics import AUTOMATIONS, CANDIDATES, METRICS, TEST_RESULTS

AGENT = "automation-generator"
REGISTRY_AGENT = "automation-registry"


def register(
    app: faust.App,
    topics: Topics,
    *,
    bootstrap: str,
    result_key: bytes,
    min_score: float = 40.0,
    regenerate_growth: float = 1.5,
) -> dict[str, Any]:
    io = AgentIO(agent=AGENT, topics=topics)
    rio = AgentIO(agent=REGISTRY_AGENT, topics=topics)
    outbox = Outbox(app, topics, bootstrap)
    # What was last generated per candidate: small JSON records (read back with the data-only codec).
    generated = state_table(app, "generated-from", partitions=CANDIDATES.partitions)

    def parse(topic: str, value: bytes) -> Automation | TestResult | RunMetric:
        model: type[Automation] | type[TestResult] | type[RunMetric]
        model = {AUTOMATIONS.name: Automation, TEST_RESULTS.name: TestResult}.get(topic, RunMetric)
        return decode(model, value)

    def absorb(reg: Registry, item: Automation | TestResult | RunMetric) -> None:
        if not verify(item, result_key):
            # Verified here too, so a forged record in the write-ahead log changes nothing on replay.
            raise ValidationError(why_not(item), field="signature")
        if isinstance(item, Automation):
            if item.state == "generated":  # others are this agent's own lifecycle echoes
                reg.apply_automation(item)
        elif isinstance(item, TestResult):
            reg.apply_test_result(item)
        else:
            reg.apply_metric(item)

    registry: DurableState[Registry, Automation | TestResult | RunMetric] = DurableState(
        app,
        "registry",
        partitions=AUTOMATIONS.partitions,
        state_class=Registry,
        factory=lambda _key: Registry(),
        decode=parse,
        apply=absorb,
        source_topics=(AUTOMATIONS.name, TEST_RESULTS.name, METRICS.name),
    )
    #: (version, state) of each automation when last seen here (the state gauge counts these states): a new
    #: version can be rejected on arrival (no language here can express its steps), the same state as the
    #: version before, and still needs its own "rejected" record on the topic
    echoed: dict[str, tuple[int, str]] = {}
    registry_inputs = app.topic(
        AUTOMATIONS.name,
        TEST_RESULTS.name,
        METRICS.name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    @app.agent(topics[CANDIDATES.name], name=AGENT)
    async def generate_automations(stream: faust.StreamT[bytes]) -> None:
        async for event in settled_events(stream):
            cand = await io.decode(Candidate, event, event.value, event.key)
            if cand is None:
                continue
            if bytes(event.key or b"") != cand.candidate_id.encode():
                # the signature does not cover the Kafka key: a signed candidate re-keyed onto another
                # partition would be looked up in (and written to) another partition's `generated-from`
                err = ValidationError("key is not the candidate's id (re-keyed replay)", field="key")
                await io.dead_letter(CANDIDATES.name, event.value, event.key, err, event)
                continue
            if await io.refuse_unsigned(cand, result_key, event, CANDIDATES.name):
                # Only the task identifier holds the key: a candidate it did not publish is never rendered
                # into a program (rote.security.verdicts). Kept whole in dead-letters.
                continue
            try:
                with io.timed():
                    last = _generated_record(generated.get(cand.candidate_id.encode()))
                    if last is not None and last["outbox"]:  # a crash left an automation maybe unsent
                        await outbox.resolve(last["outbox"], automation_identity)
                        last["outbox"] = []
                        generated[cand.candidate_id.encode()] = encode_json(last)
                    if not should_generate(cand, last, min_score=min_score, growth=regenerate_growth):
                        continue
                    # Generating costs tens of milliseconds of CPU (planning, three renders, static checks):
                    # in a process of its own, so neither the event loop nor the task identifier's share of
                    # the interpreter waits for it.
                    automation = await asyncio.get_running_loop().run_in_executor(
                        _generator_pool(), generate, cand
                    )
                    # signed: the sandbox tests, the registry and the executor take only what rote rendered
                    automation = sign(automation, result_key)
            except Exception as exc:
                await io.failed(event, exc)
                continue
            # Remembered as generated (with the automation in its outbox) and on the broker before it is
            # sent: a crash in between neither loses nor doubles the version (agents/outbox.py).
            record: dict[str, Any] = {
                "version": cand.version,
                "occurrences": cand.occurrences,
                "instances": len(cand.instances),
                "routine": list(cand.routine),
            }
            pending = await outbox.prepare(
                AUTOMATIONS.name,
                [(automation.automation_id, encode(automation), f"v{automation.version}:generated")],
            )
            generated[cand.candidate_id.encode()] = encode_json({**record, "outbox": pending})
            await outbox.flush()
            await outbox.publish(pending)
            generated[cand.candidate_id.encode()] = encode_json({**record, "outbox": []})
            metrics.EVENTS_PRODUCED.labels(topic=AUTOMATIONS.name, agent=AGENT).inc()

    @app.agent(registry_inputs, name=REGISTRY_AGENT)
    async def keep_registry(stream: faust.StreamT[bytes]) -> None:
        async for event in settled_events(stream):
            topic = event.message.topic
            model: type[Automation] | type[TestResult] | type[RunMetric]
            model = {AUTOMATIONS.name: Automation, TEST_RESULTS.name: TestResult}.get(topic, RunMetric)
            item = await rio.decode(model, event, event.value, event.key)
            if item is None:
                continue
            if bytes(event.key or b"") != item.automation_id.encode():
                # not on its automation's partition: its checkpoint would land in another changelog
                # partition than the key's own, and a restart could recover that stale copy instead
                err = ValidationError("key is not the automation id (re-keyed replay)", field="key")
                await rio.dead_letter(topic, event.value, event.key, err, event)
                continue
            if await rio.refuse_unsigned(item, result_key, event):
                # Only the sandbox runner signs results, the generator automations, the sandbox runner and
                # the executor run metrics: a record none of them made (or one changed since) must not add,
                # replace, verify, reject, degrade or retire anything. Kept whole in dead-letters.
                continue
            try:
                with rio.timed():
                    registry.apply(item.automation_id, item, partition=event.message.partition)
                    record = registry.restore(item.automation_id).get(item.automation_id)
            except Exception as exc:
                await rio.failed(event, exc)
                continue
            changed = False
            if record is not None:
                before = echoed.get(record.automation_id)
                echoed[record.automation_id] = (record.version, record.state)
                _export(state for _, state in echoed.values())
                changed = echo_due(before, record.version, record.state)
                if changed:
                    # re-signed: `state` is signed too, so a replay with another lifecycle does not verify
                    echo = sign(
                        record.automation.model_copy(
                            update={"state": record.state, "state_reason": record.state_reason}
                        ),
                        result_key,
                    )
                    live = registry.live(item.automation_id)
                    await rio.send(AUTOMATIONS.name, record.automation_id.encode(), echo, delivered=True)
                    if live is not None:
                        registry.ensure_held(item.automation_id, live)
            registry.record(item.automation_id, topic, event.value, checkpoint=changed)

    @app.page("/automations/")
    async def automations_view(web: Any, request: Any) -> Any:
        rows = []
        for key in registry.stored_keys():
            reg = registry.peek(key)
            record = reg.get(key) if reg is not None else None
            if record is not None:
                rows.append(record.to_json())
        return web.json({"automations": rows})

    return {"generate": generate_automations, "registry": keep_registry, "state": registry}


_pool: concurrent.futures.Executor | None = None


def _generator_pool() -> concurrent.futures.Executor:
    """One generator process per worker, started on first use ('spawn': nothing of the worker's event loop
    or threads is inherited). Candidates and automations cross it pickled, between rote's own processes."""
    global _pool
    if _pool is None:
        _pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn")
        )
        atexit.register(_pool.shutdown, wait=False, cancel_futures=True)
    return _pool


def _generated_record(raw: bytes | None) -> dict[str, Any] | None:
    """The generated-from record, or None when absent or not a valid record (then generate again)."""
    if raw is None:
        return None
    try:
        r = StateReader(decode_json(bytes(raw)), where="generated-from")
        return {
            "version": r.int("version"),
            "occurrences": r.int("occurrences"),
            # (records written before it was kept: none known, so no bound)
            "instances": r.int("instances") if r.has("instances") else 0,
            "routine": r.strs("routine"),
            "outbox": [read_pending(p) for p in r.objs("outbox")] if r.has("outbox") else [],
        }
    except StateError:
        metrics.STATE_RECORDS_REJECTED.labels(state="generated-from", record="checkpoint").inc()
        return None


#: Kept instances a candidate needs for grown evidence to regenerate its automation, at most (discovery's
#: `keep_instances` default): a version learnt from more is not given up for one learnt from fewer.
REGENERATE_INSTANCES = 4


def should_generate(cand: Candidate, last: dict[str, Any] | None, *, min_score: float, growth: float) -> bool:
    """Generate for a qualifying candidate once, then only on a changed routine or grown evidence (more
    occurrences, and at least the instances the last version learnt from)."""
    if cand.score < min_score:
        return False
    if last is None:
        return True
    if cand.version <= int(last["version"]):
        return False
    if list(cand.routine) != list(last["routine"]):
        return True
    # Grown evidence, and no fewer instances to learn from: a long routine's candidate may keep fewer
    # instances as its user's state fills its budget, and a version learnt from two of them made one
    # person's order number and name literals of the script, failed its test and replaced a version
    # learnt from four that had passed (a new user's log).
    # (At most `REGENERATE_INSTANCES` are asked for: a state that sheds keeps fewer for good, and a
    # candidate with as many as the generator learns well from is regenerated whatever came before.)
    need = min(int(last.get("instances", 0)), REGENERATE_INSTANCES)
    return cand.occurrences >= growth * int(last["occurrences"]) and len(cand.instances) >= need


#: States the registry announces on `automations` (the generator publishes "generated" itself).
ECHOED_STATES = frozenset({"verified", "rejected", "retired", "active", "degraded"})


def echo_due(before: tuple[int, str] | None, version: int, state: str) -> bool:
    """Does the registry's record (`version`, `state`) need a record of its own on `automations`?

    By version and state, not state alone: a new version whose steps no language here can express is
    rejected as it arrives, the state its predecessor ended in, and without its own record the topic (and
    every view built from it: the run summary, `rote report`) would show it "generated" for ever.
    """
    return (version, state) != before and state in ECHOED_STATES


def _export(states: Iterable[str]) -> None:
    counts = dict.fromkeys(("generated", "testing", "verified", "rejected", "active", "retired"), 0)
    for state in states:
        counts[state] = counts.get(state, 0) + 1
    for state, n in counts.items():
        metrics.AUTOMATIONS.labels(state=state).set(n)
