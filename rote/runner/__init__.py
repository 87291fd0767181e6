"""The executor (`rote runner`): runs verified automations with the production drivers, reports each run.

- `policy`: what may run, what is retried, what a run may reach (pure functions).
- `pool`: the run host processes (uid, rlimits, timeout, process group).
- `host`: the run host itself (`python -m rote.runner.host`): drivers, audit hook, the generated code.
- `executor`: one request in, one `RunMetric` out (no Kafka).
- `service`: the Kafka side: `run-requests` in, `metrics` out, idempotent by run id.
"""
