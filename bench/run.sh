#!/usr/bin/env bash
# `npm run bench`: the issue-7 suite (Loft vs nginx and Nix), the issue-10 push-load and production-storage benches, the issue-12
# gc-scale bench, the pull-through bench (issue 11, which writes its own section) and the dedup bench, then
# docs/benchmarks.md is regenerated. Not part of `npm test`.
#
#   BENCH_QUICK=1     small sizes, short runs: a smoke run in a few minutes (figures not comparable)
#   BENCH_RUNS=N      pairs of runs per figure (default 3; the median is reported)
#   BENCH_ONLY="narinfo push"  run only these benches (the report uses the others' last results)
#   GC_SCALE_PATHS=N           paths of the gc-scale bench (default 1,000,000; 100,000 with BENCH_QUICK)
#   BENCH_SKIP_DEDUP=1         keep the existing "Chunk dedup (issue 4)" section instead of re-running it
#   BENCH_CPU_PROF=DIR         also write V8 CPU profiles of the server during push and download
#   BENCH_UPSTREAM_DIR=DIR     keep the pull-through bench's signed xz upstream there and reuse it (writing it takes minutes)
#
# Needs: Node 20, nix (nix-bin), nginx, wrk, curl, taskset (util-linux), PostgreSQL for bench 5
# (skipped with a note when unreachable; LOFT_TEST_PG_URL, default postgresql://root@127.0.0.1:5432/test).
# Missing tools are installed with apt-get when running as root, else the command to run is printed.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
command -v taskset >/dev/null || need+=(util-linux)
command -v lscpu >/dev/null || need+=(util-linux)
command -v nix >/dev/null || need+=(nix-bin)
command -v zstd >/dev/null || need+=(zstd)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bench: installing ${need[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "bench: missing tools; install them with: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi
export PATH="$PATH:/usr/sbin:/sbin"
if [ "$(nproc)" -lt 2 ]; then
  echo "bench: needs 2 cores (server on core 0, load generator on core 1); this machine has $(nproc)" >&2
  exit 1
fi

export BENCH_OUT="${BENCH_OUT:-$(mktemp -d /tmp/loft-bench-results.XXXXXX)}"
mkdir -p "$BENCH_OUT"
echo "bench: results in $BENCH_OUT" >&2
# A private build (src and the memory bench's client) in the results dir, so a concurrent
# `npm run build` or clean in the repo cannot change the code under test mid-run.
export BENCH_DIST="$BENCH_OUT/build"
mkdir -p "$BENCH_DIST"
ln -sfn "$PWD/node_modules" "$BENCH_OUT/node_modules"
echo '{"type": "module"}' > "$BENCH_OUT/package.json"
cat > "$BENCH_OUT/tsconfig.bench.json" <<EOF
{
  "extends": "$PWD/tsconfig.json",
  "compilerOptions": { "outDir": "$BENCH_DIST", "rootDir": "$PWD", "sourceMap": false },
  "include": ["$PWD/src/**/*.ts", "$PWD/bench/lib/memory-client.ts"]
}
EOF
npx tsc -p "$BENCH_OUT/tsconfig.bench.json"
mkdir -p "$BENCH_DIST/src/server/dashboard" && cp -r src/server/dashboard/assets "$BENCH_DIST/src/server/dashboard/" # as `npm run build` does

# The bench process and everything it starts run on the client core; servers re-pin to core 0.
CLIENT_CORE="${BENCH_CLIENT_CORE:-1}"
benches=(${BENCH_ONLY:-narinfo nar-download push memory missing-paths push-load production gc-scale upstream})
started=$(date +%s)
for b in "${benches[@]}"; do
  echo "bench: === $b ===" >&2
  t0=$(date +%s)
  cat /proc/loadavg > "$BENCH_OUT/$b.loadavg"
  taskset -c "$CLIENT_CORE" node --import tsx "bench/$b.bench.ts"
  echo "bench: $b took $(( $(date +%s) - t0 )) s" >&2
done

node --import tsx bench/lib/report.ts
if [ "${BENCH_SKIP_DEDUP:-}" != 1 ]; then
  echo "bench: === dedup (issue 4) ===" >&2
  node --import tsx bench/dedup.bench.ts
fi
echo "bench: done in $(( $(date +%s) - started )) s; docs/benchmarks.md written" >&2
