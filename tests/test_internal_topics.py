"""Faust's topics (every table's changelog, the optimizer feed) are created before a worker starts.

Left to Faust they appear while the worker starts; on Apache Kafka a group whose first rebalance ran before
the feed existed gave its partition to no one (no report was ever made), and a table written before its
changelog reached the client's metadata failed every write (`PartitionsMismatch`). Checked here on both
brokers: the topics exist afterwards with the tables' partitions and Faust's own settings.
"""

from __future__ import annotations

import json
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from rote.agents import AgentOptions, build_app
from rote.agents.app import internal_topics
from rote.agents.optimizer_feed import feed_topic_name
from rote.brokers import TansuBroker, create_topics
from rote.config import Settings


def test_every_table_changelog_and_the_feed_are_created_as_faust_would(broker: Any) -> None:
    settings = Settings.from_env(broker=f"kafka://{broker.bootstrap}")
    app, _ = build_app(settings, bootstrap=broker.bootstrap, options=AgentOptions(result_key=b"k" * 32))
    specs = {s.name: s for s in internal_topics(app)}
    tables = list(app.tables.values())
    assert len(tables) >= 10 and feed_topic_name(app.conf.id) in specs
    for table in tables:
        spec = specs[f"{app.conf.id}-{table.name}-changelog"]
        assert spec.partitions == table.partitions and spec.cleanup == "compact"
        assert dict(spec.extra_config) == table.changelog_topic.config  # max.message.bytes, as Faust sets it

    create_topics(broker.bootstrap, specs.values())
    create_topics(broker.bootstrap, specs.values())  # idempotent: every run and worker calls it
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(list(specs))}
        assert described == {name: s.partitions for name, s in specs.items()}
        if not isinstance(broker, TansuBroker):  # Tansu keeps no topic configs to describe
            changelog = next(name for name in specs if name.endswith("-changelog"))
            response = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, changelog)])
            text = json.dumps(response, default=str)
            assert '"compact"' in text and '"4194304"' in text, text[:2000]
    finally:
        admin.close()
