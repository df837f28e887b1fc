#!/usr/bin/env bash
# Runs every test of HvCbt on a fresh clone: installs what is missing (npm packages, the Debian peers, PowerShell
# and Pester under .tools/), builds the engine (dist/ and the single executable build/out/hvcbt), runs the tap
# suite and the Pester suite, and ends with one line `N passed, N failed, N skipped` summing both.
#
#   bash test/run-all.sh            (npm test runs this)
#   HVCBT_SKIP_INSTALL=1 bash test/run-all.sh    skip build/install-tools.sh (tools already there)
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
logdir="$(mktemp -d)"
trap 'rm -rf "$logdir"' EXIT

step() { echo "== $*" >&2; }
fail() { echo "run-all: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  step "npm ci"
  npm ci --no-audit --no-fund >&2 || fail "npm ci failed"
fi
if [ "${HVCBT_SKIP_INSTALL:-}" != 1 ]; then
  step "tools (build/install-tools.sh)"
  bash build/install-tools.sh >&2 || fail "build/install-tools.sh failed"
fi
step "build (type check, dist/, single executable)"
npm run --silent build >&2 || fail "the build failed"

step "tap"
npx tap 2>&1 | tee "$logdir/tap.log"
tap_status=${PIPESTATUS[0]}
summary="$(grep -E '^# \{ total: [0-9]+' "$logdir/tap.log" | tail -1)"
num() { echo "$summary" | grep -oE "$1: [0-9]+" | grep -oE '[0-9]+' || echo 0; }
tap_pass=$(num pass); tap_fail=$(num fail); tap_skip=$(num skip); tap_todo=$(num todo)
if [ -z "$summary" ]; then tap_fail=$((tap_fail + 1)); echo "run-all: tap printed no summary" >&2; fi
# tap also exits non-zero for coverage below the thresholds in package.json: count that as a failure too
if [ "$tap_status" -ne 0 ] && [ "$tap_fail" -eq 0 ]; then
  tap_fail=1
  echo "run-all: tap exited $tap_status with no failed test (coverage below the thresholds?)" >&2
fi

pester_pass=0; pester_fail=0; pester_skip=0
if [ -f test/pester/run.sh ]; then
  step "Pester"
  bash test/pester/run.sh 2>&1 | tee "$logdir/pester.log"
  line="$(grep -E '^pester: [0-9]+ passed' "$logdir/pester.log" | tail -1)"
  if [ -n "$line" ]; then
    pester_pass=$(echo "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')
    pester_fail=$(echo "$line" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+')
    pester_skip=$(echo "$line" | grep -oE '[0-9]+ skipped' | grep -oE '[0-9]+' || echo 0)
  else
    pester_fail=1
    echo "run-all: the Pester run printed no summary" >&2
  fi
fi

passed=$((tap_pass + pester_pass))
failed=$((tap_fail + pester_fail))
skipped=$((tap_skip + tap_todo + pester_skip))
echo "tap: $tap_pass passed, $tap_fail failed, $((tap_skip + tap_todo)) skipped; pester: $pester_pass passed, $pester_fail failed, $pester_skip skipped" >&2
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
