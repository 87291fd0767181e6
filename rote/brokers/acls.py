"""Who may do what on the cluster: one principal per component, least privilege, from the topic catalogue.

The table below is the one source of truth for rote's Kafka ACLs: `rote acls apply` writes it to a cluster,
`rote acls show` prints it, the secured Apache Kafka test checks a cluster configured from it, and
docs/security.md and the deploy files describe the same principals. Why per component: a producer's
credentials leak first (they sit on every desktop), so a producer may write `user-actions` and nothing
else; only the sandbox runner may write `test-results` (a forged verdict is also refused by its signature,
rote.security.verdicts); only workers may write candidates, automations, anomalies, reports and their own
state (changelogs and internal topics, all named `<app id>-...`).

- producer: writes user-actions; nothing else.
- worker: writes candidates, automations, anomalies, optimization-reports, dead-letters and `<app>-*` (its
  changelogs and internal feed, which it may create), and `user-flush` control messages on user-actions;
  reads every catalogue topic; groups `<app>*`.
- sandbox: writes test-results, metrics, dead-letters; reads automations; groups `<app>-sandbox*`.
- runner (the executor): writes metrics, dead-letters; reads run-requests, automations, test-results,
  metrics (it follows the registry's verdicts); groups `<app>-runner*`.
- operator (`rote automations run`, a scheduler): writes run-requests; reads automations and metrics.
- run: the union of all of them (`rote run --broker` runs every component in one process).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from rote.brokers.security import KafkaSecurity
from rote.streams.topics import BY_NAME, CATALOGUE

Op = Literal["READ", "WRITE", "DESCRIBE", "CREATE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS"]
Resource = Literal["topic", "group", "cluster"]
Pattern = Literal["literal", "prefixed"]
Component = Literal["producer", "worker", "sandbox", "runner", "operator", "run"]
COMPONENTS: tuple[Component, ...] = ("producer", "worker", "sandbox", "runner", "operator", "run")


@dataclass(frozen=True, order=True)
class Grant:
    """One allow rule: `principal` may `op` on the `resource` named (or prefixed) `name`."""

    principal: str
    resource: Resource
    name: str
    pattern: Pattern
    op: Op


def _topic_names(*names: str) -> list[str]:
    out = []
    for n in names:
        if n not in BY_NAME and n != "run-requests":
            raise KeyError(f"unknown topic {n!r}")
        out.append(n)
    return out


def grants(component: Component, *, principal: str, app_id: str = "rote") -> list[Grant]:
    """The ACLs of one component's principal."""
    if component == "run":
        union: set[Grant] = set()
        for c in ("producer", "worker", "sandbox", "runner", "operator"):
            union.update(grants(c, principal=principal, app_id=app_id))
        return sorted(union)
    g: list[Grant] = []

    def topic(names: Iterable[str], *ops: Op, pattern: Pattern = "literal") -> None:
        for n in names:
            for op in ops:
                g.append(Grant(principal, "topic", n, pattern, op))

    def group(name: str, pattern: Pattern = "prefixed") -> None:
        g.append(Grant(principal, "group", name, pattern, "READ"))
        g.append(Grant(principal, "group", name, pattern, "DESCRIBE"))

    if component == "producer":
        topic(_topic_names("user-actions"), "WRITE", "DESCRIBE")
    elif component == "worker":
        everything = [spec.name for spec in CATALOGUE]
        topic(everything, "READ", "DESCRIBE")
        topic(
            _topic_names("candidates", "automations", "anomalies", "optimization-reports", "dead-letters"),
            "WRITE",
        )
        # `user-flush` control messages (close a user's open segments, in order with their actions)
        topic(_topic_names("user-actions"), "WRITE")
        # Faust's changelogs and rote's internal feed: created, written and read by workers only.
        topic([f"{app_id}-"], "READ", "WRITE", "DESCRIBE", "CREATE", "DESCRIBE_CONFIGS", pattern="prefixed")
        group(app_id)
    elif component == "sandbox":
        topic(_topic_names("automations"), "READ", "DESCRIBE")
        topic(_topic_names("test-results", "metrics", "dead-letters"), "WRITE", "DESCRIBE")
        group(f"{app_id}-sandbox")
    elif component == "runner":
        topic(_topic_names("run-requests", "automations", "test-results", "metrics"), "READ", "DESCRIBE")
        topic(_topic_names("metrics", "dead-letters"), "WRITE", "DESCRIBE")
        group(f"{app_id}-runner")
    elif component == "operator":
        topic(_topic_names("run-requests"), "WRITE", "DESCRIBE")
        topic(_topic_names("automations", "metrics"), "READ", "DESCRIBE")
    return sorted(set(g))


def table(principals: dict[Component, str], *, app_id: str = "rote") -> list[Grant]:
    """Every grant for a deployment whose components use the principals given."""
    out: set[Grant] = set()
    for component, principal in principals.items():
        out.update(grants(component, principal=principal, app_id=app_id))
    return sorted(out)


def apply(
    bootstrap: str,
    rules: Iterable[Grant],
    *,
    request_timeout: float = 15.0,
    security: KafkaSecurity | None = None,
) -> int:
    """Create the ACLs on a cluster (idempotent: Kafka keeps one copy of an identical binding).

    Runs with this process's Kafka security (`rote.brokers.security`), which must be a principal allowed
    to alter ACLs (a super user or one with ALTER on the cluster).
    """
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )

    from rote.brokers.admin import admin_client
    from rote.errors import BrokerError

    kinds = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP, "cluster": ResourceType.CLUSTER}
    patterns = {"literal": ACLResourcePatternType.LITERAL, "prefixed": ACLResourcePatternType.PREFIXED}
    acls = [
        ACL(
            principal=f"User:{r.principal}",
            host="*",
            operation=getattr(ACLOperation, r.op),
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePattern(kinds[r.resource], r.name, patterns[r.pattern]),
        )
        for r in rules
    ]
    with admin_client(bootstrap, request_timeout=request_timeout, security=security) as admin:
        result = admin.create_acls(acls)
    failed = result.get("failed", [])
    if failed:
        acl, err = failed[0]
        raise BrokerError(f"{len(failed)} ACLs were refused, e.g. {acl}: {err}")
    return len(acls)


#: Principals rote's deploy files use, one per component (`rote acls ... --principal component=name`).
DEFAULT_PRINCIPALS: dict[Component, str] = {
    "producer": "rote-producer",
    "worker": "rote-worker",
    "sandbox": "rote-sandbox",
    "runner": "rote-runner",
    "operator": "rote-operator",
}

_STRIMZI_OPS = {
    "READ": "Read",
    "WRITE": "Write",
    "DESCRIBE": "Describe",
    "CREATE": "Create",
    "DESCRIBE_CONFIGS": "DescribeConfigs",
    "ALTER_CONFIGS": "AlterConfigs",
}


def strimzi_users(
    principals: dict[Component, str],
    *,
    cluster: str = "rote-kafka",
    namespace: str = "rote",
    app_id: str = "rote",
) -> list[dict[str, object]]:
    """One Strimzi `KafkaUser` per component: SCRAM-SHA-512 authentication and exactly the ACLs above.

    On Kubernetes the platform keeps the secrets: the Strimzi user operator creates each user's password in
    a Secret of the user's name, which the component's pods mount (deploy/k8s/*.yaml).
    """
    users: list[dict[str, object]] = []
    for component, principal in principals.items():
        rules = [
            {
                "resource": {"type": g.resource, "name": g.name, "patternType": g.pattern},
                "operations": [_STRIMZI_OPS[g.op]],
                "host": "*",
            }
            for g in grants(component, principal=principal, app_id=app_id)
        ]
        users.append(
            {
                "apiVersion": "kafka.strimzi.io/v1beta2",
                "kind": "KafkaUser",
                "metadata": {
                    "name": principal,
                    "namespace": namespace,
                    "labels": {"strimzi.io/cluster": cluster, "app.kubernetes.io/part-of": "rote"},
                },
                "spec": {
                    "authentication": {"type": "scram-sha-512"},
                    "authorization": {"type": "simple", "acls": rules},
                },
            }
        )
    return users


def strimzi_topics(
    *, replication: int = 3, cluster: str = "rote-kafka", namespace: str = "rote"
) -> list[dict[str, object]]:
    """One Strimzi `KafkaTopic` per catalogue topic (workers may create only their own `<app>-*` topics)."""
    out: list[dict[str, object]] = []
    for spec in CATALOGUE:
        config: dict[str, object] = dict(spec.config())
        config["min.insync.replicas"] = min(2, replication)
        out.append(
            {
                "apiVersion": "kafka.strimzi.io/v1beta2",
                "kind": "KafkaTopic",
                "metadata": {
                    "name": spec.name,
                    "namespace": namespace,
                    "labels": {"strimzi.io/cluster": cluster, "app.kubernetes.io/part-of": "rote"},
                },
                "spec": {"partitions": spec.partitions, "replicas": replication, "config": config},
            }
        )
    return out
