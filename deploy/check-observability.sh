#!/usr/bin/env bash
# The observability checks CI runs, with promtool's own output in the log.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== promtool check rules"
promtool check rules deploy/prometheus/rules/*.yml
echo "== promtool check config"
promtool check config deploy/prometheus/prometheus.yml
echo "== promtool test rules"
promtool test rules deploy/prometheus/tests/alerts_test.yml
echo "== dashboards freshness"
rote dashboards check
