#!/usr/bin/env bash
# Runs every test: the server and client (node --test over test/**/*.test.ts;
# Node 20 does not glob .ts files itself), then the AWS deployment code in infra/.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(find test -name '*.test.ts' | sort)
node --import tsx --test --test-concurrency="${LOFT_TEST_CONCURRENCY:-2}" "$@" "${files[@]}"

if [ -d node_modules/@pulumi/pulumi ]; then
  (cd infra && npm test --silent)
elif [ "${CI:-}" = true ]; then
  echo "the infra workspace is not installed: run npm ci at the root" >&2
  exit 1
else
  echo "*** SKIPPED: infra tests (run npm ci at the root to include them) ***" >&2
fi
