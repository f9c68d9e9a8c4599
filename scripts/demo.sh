#!/usr/bin/env bash
# Run the document-generation pipeline end to end on the embedded default: SQLite and a broker
# in a folder next to it. No server is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export WFE_DATABASE_URL="${WFE_DATABASE_URL:-sqlite:///wfe.db}"
export WFE_AGENT_MODULES="${WFE_AGENT_MODULES:-workers.demo_agents}"

$BIN/wfe validate config/workflows/ib-generation.json
$BIN/wfe test config/workflows/*  # each definition's own cases, in process, on a virtual clock
status=0
$BIN/wfe run config/workflows/ib-generation.json --input '{"project_id": "demo-1", "document_type": "ib"}' || status=$?
id=$($BIN/wfe list --limit 1 --json | $BIN/python -c 'import json, sys; print(json.load(sys.stdin)["executions"][0]["execution_id"])')

cat <<TEXT

Where to look next (the database is $WFE_DATABASE_URL):
  .venv/bin/wfe status $id          the execution, step by step
  .venv/bin/wfe logs $id            every attempt, with durations
  .venv/bin/wfe logs $id --step write   each section written by the map, one retried once
  .venv/bin/wfe logs $id --errors   only the attempts that failed
  .venv/bin/wfe list                every execution
  .venv/bin/wfe run config/workflows/ib-review.yaml --agents workers.demo_agents --input '{"project_id": "p-2"}'
                                    fan-out, join, conditions and a human approval step
  README.md                         running on PostgreSQL and Redis, scaling, Flower, metrics

Next: the whole engine with its monitor and API, on this same database, in one command
(it makes a local admin on its first run and prints a link that signs you in):
  .venv/bin/wfe dev --agents workers.demo_agents
TEXT
exit $status
