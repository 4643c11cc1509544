#!/usr/bin/env bash
# The whole test suite: unit tests and end-to-end tests with real daemons in
# network namespaces. This is what README's test command and .ci/run run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash test/setup.sh
exec npx vitest run "$@"
