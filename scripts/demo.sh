#!/usr/bin/env bash
# Validate the example workflows and register them in the embedded database.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
for file in config/workflows/*; do
  $BIN/wfe validate "$file"
done
$BIN/wfe db upgrade
for file in config/workflows/*; do
  $BIN/wfe register "$file"
done
$BIN/wfe workflows
