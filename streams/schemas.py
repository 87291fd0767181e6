"""Versioned event schemas: the single source of truth for every topic's payload.

Events travel as UTF-8 JSON. These pydantic models validate at ingress (an event that fails goes to
`dead-letters` with the reason) and generate the JSON Schema files in `streams/jsonschema/` that
producers in other languages validate against. A breaking change bumps `schema_version` and adds a new
model; consumers keep reading the old version until producers have moved.
"""

from __future__ import annotations

import base64
import functools
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from rote.errors import ConfigError, ValidationError

NonEmpty = Annotated[str, Field(min_length=1, max_length=512)]
Id = Annotated[str, Field(min_length=1, max_length=256)]
#: Any duration an event reports: a century at most. Real ones are seconds to days (an action is capped at a
#: year, `MAX_ACTION_SECONDS`); an unbounded one (1e200 s in a forged run metric) overflowed the squares of
#: the workflow analyzer's statistics and crashed every worker that restored it.
MAX_SECONDS = 100 * 366 * 86400.0
Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS)]
#: Hours per year a routine takes or an automation saves: finite, not a duration (not capped at a century)
Hours = Annotated[float, Field(ge=0)]
#: Byte counts (memory, output): below 2**63, what any counter can hold.
Bytes = Annotated[int, Field(ge=0, lt=2**63)]
#: Free text from users (field values, cell contents) is capped so one event cannot blow up memory.
MAX_VALUE_CHARS = 65536
#: No single UI action lasts a year; a longer (or infinite) reading is a logger's clock bug, and letting it
#: through would overflow the durations and hours the discoverer sums into candidates.
MAX_ACTION_SECONDS = 366 * 86400.0


class Event(BaseModel):
    """Base of all events: immutable, unknown fields ignored so older consumers survive newer producers."""

    # allow_inf_nan=False: JSON has no Infinity or NaN, yet Python's parser reads them; one NaN in a metric
    # made a report's score NaN and its state's checkpoint unreadable (a forged event)
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, allow_inf_nan=False)


#: How far ahead of this machine's clock an action's timestamp may be (devices' clocks drift); the default of
#: `ROTE_MAX_CLOCK_SKEW_SECONDS`.
MAX_CLOCK_SKEW = timedelta(days=1)
#: The earliest plausible user action, default of `ROTE_EARLIEST_EVENT_TIME`: older readings are unset device
#: clocks (epoch 0, year 1), and one of them would drag a user's event-time clock decades back.
EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
#: Size caps on free-form strings a logger fills (element ids, URLs, titles, logger columns kept verbatim), so
#: one event cannot carry megabytes into agent state; real Action Logger and Bosco values are under 200 chars.
MAX_TEXT_CHARS = 8192
MAX_ATTRIBUTES = 128
MAX_ATTRIBUTES_CHARS = 65536
Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]


@functools.lru_cache(maxsize=8)
def _window(earliest_raw: str | None, skew_raw: str | None) -> tuple[datetime, timedelta]:
    earliest = EARLIEST_EVENT_TIME
    if earliest_raw:
        try:
            earliest = datetime.fromisoformat(earliest_raw.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"ROTE_EARLIEST_EVENT_TIME={earliest_raw!r} is not an ISO-8601 date") from None
        earliest = earliest if earliest.tzinfo else earliest.replace(tzinfo=UTC)
    skew = MAX_CLOCK_SKEW
    if skew_raw:
        try:
            skew = timedelta(seconds=float(skew_raw))
        except (ValueError, OverflowError):
            raise ConfigError(f"ROTE_MAX_CLOCK_SKEW_SECONDS={skew_raw!r} is not a number") from None
        if skew < timedelta(0):
            raise ConfigError("ROTE_MAX_CLOCK_SKEW_SECONDS must not be negative")
    return earliest, skew


def plausible_time_window() -> tuple[datetime, timedelta]:
    """(earliest plausible action time, how far ahead of the clock one may be), from the environment."""
    return _window(os.environ.get("ROTE_EARLIEST_EVENT_TIME"), os.environ.get("ROTE_MAX_CLOCK_SKEW_SECONDS"))


def implausible_time(ts: datetime, now: datetime | None = None) -> str | None:
    """Why `ts` cannot be when a person did something, or None when it can. Importers and ingress share it,
    so a file row and a producer's event are judged by the same window and the reason reads the same."""
    earliest, skew = plausible_time_window()
    stamp = ts.isoformat().replace("+00:00", "Z")
    if ts < earliest:
        return (
            f"timestamp {stamp} is outside the plausible window: before {earliest.date().isoformat()} "
            "(ROTE_EARLIEST_EVENT_TIME); an unset device clock?"
        )
    if ts > (now or datetime.now(UTC)) + skew:
        hours = skew.total_seconds() / 3600
        return (
            f"timestamp {stamp} is outside the plausible window: more than {hours:g} h in the future by this "
            "machine's clock (ROTE_MAX_CLOCK_SKEW_SECONDS); a wrong device clock?"
        )
    return None


def _utc(ts: datetime) -> datetime:
    try:
        return ts.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59-05:00: a valid local time that UTC cannot represent
        raise ValueError("timestamp is outside the range representable in UTC") from None


# --------------------------------------------------------------------------------------------------
# user-actions
# --------------------------------------------------------------------------------------------------


class Target(Event):
    """What an action was done to. Loggers record different things; every field is optional.

    `field` is the logical field (form label, input name); `element` the UI element's identity (tag,
    id, class); spreadsheet actions carry `workbook`, `sheet`, `cell` (e.g. "B7"), `column` and `row`.
    """

    field: Text | None = None
    element: Text | None = None
    element_type: Text | None = None
    workbook: Text | None = None
    sheet: Text | None = None
    cell: Text | None = None
    column: Text | None = None
    row: int | None = None
    url: Text | None = None
    file: Text | None = None
    title: Text | None = None


#: What an importer sets as `UserAction.app` when its source names no application (the field is required):
#: views and routine names leave it out rather than say "in unknown".
UNKNOWN_APP = "unknown"


class UserAction(Event):
    """One thing a person did in an application, as a desktop logger or browser extension saw it."""

    schema_version: Literal[1] = 1
    event_id: Id
    user_id: Id
    session_id: Text | None = None
    device: Text | None = None
    timestamp: AwareDatetime
    app: NonEmpty
    action_type: NonEmpty
    target: Target = Field(default_factory=Target)
    value: str | None = Field(default=None, max_length=MAX_VALUE_CHARS)
    duration_seconds: Annotated[float, Field(ge=0, le=MAX_ACTION_SECONDS)] | None = None
    source: Text | None = Field(default=None, description="the logger/format that recorded the event")
    attributes: dict[str, str] = Field(
        default_factory=dict,
        max_length=MAX_ATTRIBUTES,
        description=f"logger columns kept verbatim (at most {MAX_ATTRIBUTES}, {MAX_ATTRIBUTES_CHARS} chars)",
    )

    @field_validator("timestamp")
    @classmethod
    def _utc_plausible(cls, ts: datetime) -> datetime:
        """A user action cannot have happened tomorrow, nor in 1970. One event from a device with a wrong
        clock would otherwise move that user's event-time clock and make every later real event look late
        or early. The window is configurable (`plausible_time_window`) and the reason names the setting."""
        ts = _utc(ts)
        reason = implausible_time(ts)
        if reason is not None:
            raise ValueError(reason)
        return ts

    @field_validator("attributes")
    @classmethod
    def _attributes_capped(cls, attributes: dict[str, str]) -> dict[str, str]:
        size = sum(len(k) + len(v) for k, v in attributes.items())
        if size > MAX_ATTRIBUTES_CHARS:
            raise ValueError(f"attributes hold {size} characters, over the cap of {MAX_ATTRIBUTES_CHARS}")
        return attributes


#: Most actions one batch message may carry: a user's burst of work, and far under the message size limit.
MAX_BATCH_ACTIONS = 2000


class UserActionBatch(Event):
    """One user's actions in one `user-actions` message, in time order.

    Why batches: a Kafka message and a stream-processing step cost tens of microseconds each whatever they
    carry, far more than validating and learning one action, so the producer API, `rote produce` and replays
    send each user's actions in batches (within a short linger). Single `UserAction` messages stay accepted.
    Each action is validated on its own: an invalid one is dead-lettered alone, the rest go on.
    """

    kind: Literal["user-action-batch"]
    schema_version: Literal[1] = 1
    user_id: Id
    actions: list[UserAction] = Field(min_length=1, max_length=MAX_BATCH_ACTIONS)

    @field_validator("actions")
    @classmethod
    def _one_user(cls, actions: list[UserAction], info: Any) -> list[UserAction]:
        user = info.data.get("user_id")
        if user is not None and any(a.user_id != user for a in actions):
            raise ValueError("every action of a batch must be the batch's user's")
        return actions


# --------------------------------------------------------------------------------------------------
# candidates
# --------------------------------------------------------------------------------------------------

ParamKind = Literal["constant", "variable", "derived"]


class StepParameter(Event):
    """Where a step's value comes from: always the same, varying input, or flowing from an earlier step."""

    kind: ParamKind
    constant: str | None = None
    source_step: int | None = Field(default=None, description="index of the step the value flows from")
    examples: list[str] = Field(default_factory=list, max_length=20)


class RoutineStep(Event):
    label: NonEmpty
    app: str
    action_type: str
    target: Target = Field(default_factory=Target)
    parameter: StepParameter | None = None
    optional: bool = False
    mean_duration_seconds: Seconds | None = None


class RoutineInstance(Event):
    """One observed occurrence of a routine: its events in routine-step order (None for a missing step)."""

    event_ids: list[str | None]
    values: list[str | None]
    start: AwareDatetime
    end: AwareDatetime
    step_durations_seconds: list[Seconds | None] = Field(default_factory=list)
    active_seconds: Seconds | None = Field(
        default=None,
        description="the time the instance took: end - start less the time spent on other work within it "
        "(interleaved routines, noise), plus the last step's own duration when the logger gave one",
    )
    targets: list[Target | None] = Field(
        default_factory=list,
        description="optional: each step's target in this instance (cells and files vary per instance)",
    )


class ScoreBreakdown(Event):
    """Each factor is in [0, 1]; `weights` says how they combine into the 0-100 potential."""

    frequency: float = Field(ge=0, le=1)
    time_cost: float = Field(ge=0, le=1)
    regularity: float = Field(ge=0, le=1)
    determinism: float = Field(ge=0, le=1)
    variability: float = Field(ge=0, le=1)
    length: float = Field(ge=0, le=1)
    weights: dict[str, float] = Field(default_factory=dict)


class Candidate(Event):
    schema_version: Literal[1] = 1
    candidate_id: Id
    version: int = Field(ge=1, description="grows as evidence for the same routine grows")
    user_id: Id = Field(description="the user, or the team for cross-user candidates")
    routine: list[str] = Field(min_length=1, description="ordered action labels")
    steps: list[RoutineStep] = Field(min_length=1)
    occurrences: int = Field(ge=1)
    instances: list[RoutineInstance] = Field(default_factory=list, description="most recent instances")
    score: float = Field(ge=0, le=100)
    breakdown: ScoreBreakdown
    mean_duration_seconds: Seconds
    observed_hours_per_year: Hours
    estimated_hours_saved_per_year: Hours
    rank: int = Field(ge=1)
    priority: Literal["high", "medium", "low"]
    first_seen: AwareDatetime
    last_seen: AwareDatetime
    updated_at: AwareDatetime
    name: str = Field(
        default="",
        max_length=300,
        description="human-readable name from the routine's applications, documents, forms and fields",
    )
    variant_note: str | None = Field(
        default=None, max_length=500, description="what tells this variant apart from the user's others"
    )
    sop: list[Annotated[str, Field(max_length=500)]] = Field(
        default_factory=list,
        max_length=200,
        description="standard operating procedure: numbered plain-language steps with the data flow",
    )
    signature: str | None = Field(
        default=None,
        max_length=128,
        description="the task identifier's HMAC-SHA256 over every other field (rote.security.verdicts); "
        "the generator makes automations only from candidates with a valid one",
    )


# --------------------------------------------------------------------------------------------------
# automations
# --------------------------------------------------------------------------------------------------

Language = Literal["python", "bash", "applescript"]
Lifecycle = Literal["generated", "testing", "verified", "rejected", "active", "retired", "degraded"]


class GeneratedSource(Event):
    language: Language
    source: str
    supported: bool = Field(description="False when a step cannot be expressed in this language")
    unsupported_steps: list[str] = Field(default_factory=list)
    static_check: str = Field(description="'ok' or the checker's error")


class ExpectedAction(Event):
    action_type: str
    target: Target = Field(default_factory=Target)
    value: str | None = None


class TestCase(Event):
    """A held-out observed instance: given these inputs the automation must do exactly these actions."""

    __test__: ClassVar[bool] = False  # a schema, not a pytest test class

    case_id: Id
    inputs: dict[str, str]
    environment: dict[str, Any] = Field(
        default_factory=dict, description="simulated world state: spreadsheet cells, files, form fields"
    )
    expected: list[ExpectedAction]


#: Test cases an automation may carry: each runs in the jail once per language, up to its wall limit, so a
#: forged automation with 20,000 tiny cases (1 MB) held the sandbox runner for a day. The generator holds
#: out at most this many (`rote.generator.plan.PlanConfig.max_test_cases`).
MAX_TEST_CASES = 20


class Automation(Event):
    schema_version: Literal[1] = 1
    automation_id: Id
    version: int = Field(ge=1)
    candidate_id: Id
    candidate_version: int = Field(ge=1)
    user_id: Id
    name: str
    #: written into every generated source's header: a version, nothing that could be code
    generator_version: str = Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$")
    template_version: str
    state: Lifecycle
    state_reason: str | None = None
    plan: list[dict[str, Any]] = Field(description="the target-neutral step plan rendered to each language")
    parameters: list[str] = Field(default_factory=list)
    sources: dict[str, GeneratedSource]
    test_cases: list[TestCase] = Field(default_factory=list, max_length=MAX_TEST_CASES)
    created_at: AwareDatetime
    signature: str | None = Field(
        default=None,
        max_length=128,
        description="the generator's HMAC-SHA256 over every field but this one, `state` and `state_reason` "
        "(rote.security.verdicts); the sandbox tests, and the registry and the executor accept, only "
        "automations with a valid one",
    )


# --------------------------------------------------------------------------------------------------
# test-results and metrics
# --------------------------------------------------------------------------------------------------

StopReason = Literal[
    "exited",
    "timeout",
    "cpu",
    "memory",
    "pids",
    "output",
    "disk",
    "seccomp",
    "network",
    "signal",
    "unsupported",
    "setup",
]
Verdict = Literal["passed", "failed", "error", "unsupported"]


class TestResult(Event):
    __test__: ClassVar[bool] = False  # a schema, not a pytest test class

    schema_version: Literal[1] = 1
    result_id: Id
    automation_id: Id
    version: int = Field(ge=1)
    case_id: str | None = None
    language: Language
    verdict: Verdict
    passed: bool
    exit_code: int | None = None
    signal: int | None = None
    stop_reason: StopReason
    detail: str = ""
    wall_seconds: Seconds
    cpu_seconds: Seconds
    peak_memory_bytes: Bytes
    output_bytes: Bytes
    mismatches: list[str] = Field(default_factory=list, max_length=50)
    started_at: AwareDatetime
    runner: str = ""
    signature: str | None = Field(
        default=None,
        max_length=128,
        description="the sandbox runner's HMAC-SHA256 over every other field (rote.security.verdicts); "
        "results without a valid one are not trusted",
    )


class StepTiming(Event):
    step: int = Field(ge=0)
    label: str
    duration_seconds: Seconds


RunOutcome = Literal["succeeded", "failed", "timeout", "error"]


class RunMetric(Event):
    """One run of an automation, by a production runner or the sandbox.

    `source` says where the numbers come from: "sandbox" (a jailed test against the simulator),
    "production" (the executor, `rote runner`, with the production drivers against the real
    applications) or "simulated" (made up by a program, e.g. a load generator; never counted as time
    saved and labelled simulated wherever it shows). `outcome`, `error`, `failed_step` and `attempts` are
    filled by the executor; older producers leave them unset.
    """

    schema_version: Literal[1] = 1
    run_id: Id
    automation_id: Id
    version: int = Field(ge=1)
    source: Literal["sandbox", "production", "simulated"]
    started_at: AwareDatetime
    duration_seconds: Seconds
    success: bool
    cpu_seconds: Seconds | None = None
    peak_memory_bytes: Bytes | None = None
    steps: list[StepTiming] = Field(default_factory=list)
    outcome: RunOutcome | None = Field(
        default=None,
        description="succeeded; failed (a step failed: see error and failed_step); timeout; error (the "
        "executor could not run it: no browser, bad parameters, ...)",
    )
    error: str | None = Field(default=None, max_length=2000, description="why the run failed, one line")
    failed_step: int | None = Field(default=None, ge=0, description="index of the step that failed")
    attempts: int = Field(default=1, ge=1, description="tries the executor made (retries by policy)")
    request_id: str | None = Field(
        default=None,
        max_length=256,
        description="the run request this run answers (= run_id for the executor)",
    )
    signature: str | None = Field(
        default=None,
        max_length=128,
        description="the sandbox runner's or the executor's HMAC-SHA256 over every other field "
        "(rote.security.verdicts); runs without a valid one move no lifecycle and count in no report",
    )


class RunRequest(Event):
    """Ask the executor (`rote runner`) to run an automation once with these parameter values.

    `run_id` is chosen by the requester and makes the request idempotent: a redelivered or repeated
    request with the same id neither runs nor publishes twice. Parameters are data handed to the
    generated program at run time, never code.
    """

    schema_version: Literal[1] = 1
    run_id: Id
    automation_id: Id
    version: int | None = Field(default=None, ge=1, description="run this version only; default: current")
    params: dict[str, Annotated[str, Field(max_length=MAX_VALUE_CHARS)]] = Field(default_factory=dict)
    requested_by: str = Field(default="", max_length=256)
    requested_at: AwareDatetime
    allow_degraded: bool = Field(
        default=False, description="run even if the automation is degraded (a person retrying after a fix)"
    )


# --------------------------------------------------------------------------------------------------
# anomalies, reports, dead letters
# --------------------------------------------------------------------------------------------------


class Anomaly(Event):
    schema_version: Literal[1] = 1
    anomaly_id: Id
    automation_id: Id
    signal: NonEmpty = Field(
        description="duration_seconds, failure_ratio, cpu_seconds, peak_memory_bytes, ..."
    )
    score: float = Field(ge=0, le=1)
    severity: Literal["info", "warning", "critical"]
    observed: float
    expected_low: float
    expected_high: float
    detected_at: AwareDatetime
    observed_at: AwareDatetime
    detector: str
    explanation: str


class OptimizationReport(Event):
    """The periodic report; sections are plain JSON objects documented in docs/workflow.md."""

    schema_version: Literal[1] = 1
    report_id: Id
    generated_at: AwareDatetime
    period_start: AwareDatetime | None = None
    period_end: AwareDatetime | None = None
    top_candidates: list[dict[str, Any]] = Field(default_factory=list)
    automations: list[dict[str, Any]] = Field(default_factory=list)
    bottlenecks: list[dict[str, Any]] = Field(default_factory=list)
    parallelization: list[dict[str, Any]] = Field(default_factory=list)
    caching: list[dict[str, Any]] = Field(default_factory=list)
    optimization_score: float | None = Field(default=None, ge=0, le=100)
    optimization_breakdown: dict[str, Any] = Field(
        default_factory=dict, description="the score's factors and weights (docs/workflow.md)"
    )
    anomalies: list[dict[str, Any]] = Field(default_factory=list)
    efficiency: dict[str, Any] = Field(default_factory=dict, description="time saved, ROI, trends")


class DeadLetter(Event):
    """An event that could not be accepted, kept whole: the original bytes are base64 in `payload_b64`."""

    schema_version: Literal[1] = 1
    source_topic: NonEmpty
    reason: str
    field: str | None = None
    payload_b64: str
    payload_bytes: int | None = Field(
        default=None, ge=0, description="original size when `payload_b64` holds only the start of it"
    )
    key_b64: str | None = None
    partition: int | None = None
    offset: int | None = None
    received_at: AwareDatetime
    agent: str

    @property
    def payload(self) -> bytes:
        return base64.b64decode(self.payload_b64)


# --------------------------------------------------------------------------------------------------
# registry and codec
# --------------------------------------------------------------------------------------------------

E = TypeVar("E", bound=Event)

SCHEMAS: dict[str, type[Event]] = {
    "UserAction": UserAction,
    "UserActionBatch": UserActionBatch,
    "Candidate": Candidate,
    "Automation": Automation,
    "TestResult": TestResult,
    "RunMetric": RunMetric,
    "RunRequest": RunRequest,
    "Anomaly": Anomaly,
    "OptimizationReport": OptimizationReport,
    "DeadLetter": DeadLetter,
}


#: the big events, written without their None fields (`encode`)
_COMPACT = (Candidate, Automation)


def encode(event: Event) -> bytes:
    """An event as its topic carries it. Candidates and automations leave their None fields out (each has
    None as its default, so they decode the same): a candidate's 48 steps and its instances' targets are
    mostly unset target fields, which made a candidate of the bundled log 74 kB, 47 kB without, and every
    agent downstream parses it (docs/benchmarks.md). Other events keep their fields, null or not: they are
    small, and readers outside rote (a dead-letter consumer reading `key_b64`) index them."""
    return event.model_dump_json(exclude_none=isinstance(event, _COMPACT)).encode()


def _reason(err: PydanticValidationError) -> tuple[str, str | None]:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ()))
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return (f"{loc or '<event>'}: {first.get('msg', 'invalid')}{more}", loc or None)


def decode(model: type[E], payload: bytes | str | dict[str, Any]) -> E:
    """Parse and validate one event, raising `rote.errors.ValidationError` with a readable reason.

    Bytes and text go through pydantic's own JSON parser first (a third faster on big events such as
    candidates); anything it refuses takes the path below, whose verdict and reason stand, so the fast
    path changes no outcome and no dead-letter reason."""
    if not isinstance(payload, dict):
        try:
            return model.model_validate_json(payload)
        except (PydanticValidationError, ValueError, RecursionError):
            pass
    try:
        if isinstance(payload, dict):
            return model.model_validate(payload)
        if isinstance(payload, bytes):
            try:
                text = payload.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValidationError(f"payload is not UTF-8: {exc.reason} at byte {exc.start}") from None
        else:
            text = payload
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(
                f"payload is not JSON: {exc.msg} at line {exc.lineno} col {exc.colno}"
            ) from None
        except RecursionError:
            raise ValidationError("payload is nested too deeply to parse") from None
        except ValueError as exc:  # an integer of more than 4,300 digits (Python's limit on int())
            raise ValidationError(f"payload is not JSON rote reads: {str(exc)[:120]}") from None
        if not isinstance(data, dict):
            raise ValidationError(f"payload is a JSON {type(data).__name__}, expected an object")
        return model.model_validate(data)
    except PydanticValidationError as exc:
        reason, field = _reason(exc)
        raise ValidationError(reason, field=field) from None
    except (OverflowError, ValueError) as exc:  # a validator's arithmetic on a value out of range
        raise ValidationError(f"a value is out of range: {str(exc)[:120]}") from None


def json_schema(model: type[Event]) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    version = model.model_fields.get("schema_version")
    if version is not None:
        schema["$id"] = f"https://rote.dev/schemas/{model.__name__}.v{version.default}.json"
    return schema
