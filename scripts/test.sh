#!/usr/bin/env bash
# Every test, on every Python CI covers. On the machine's python3 (.venv, 3.11): the whole
# suite with the compiled extensions, then with their pure-Python twins
# (HOOKTEL_PURE_PYTHON=1), then the native tests against an ASan/UBSan build, then the
# OpenTelemetry tests at the oldest OpenTelemetry hooktel declares (scripts/floor.sh). On
# the oldest and newest Python hooktel supports (.venv-3.10, .venv-3.13): the compiled
# extensions' tests, the servers' and the packaging's native, and the twins' tests
# (tests/native, tests/unit) pure.
# Every stage runs whatever the others did; one table at the end sums them up, its last
# line the totals, and the exit status is non-zero if any stage failed. Arguments go to
# pytest in the whole-suite stages.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/pythons.sh
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
summary=()
total_passed=0 total_failed=0 total_skipped=0 failed_stages=0

# count WORDS LOG: the sum of the counts pytest's closing lines in LOG give for WORDS.
count() {
    grep -E '^(=+ )?[0-9]+ [a-z]+.* in [0-9.]+s' "$2" | grep -oE "[0-9]+ ($1)\b" | awk '{n += $1} END {print n + 0}'
}

# stage NAME COMMAND...: run COMMAND to its end, its output shown and kept for the summary.
stage() {
    local name=$1
    shift
    echo "==== $name: $*"
    local start=$SECONDS
    "$@" 2>&1 | tee "$logs/log"
    local status=${PIPESTATUS[0]}
    local seconds=$((SECONDS - start))
    local passed failed skipped
    passed=$(count passed "$logs/log")
    failed=$(count 'failed|errors?' "$logs/log")
    skipped=$(count skipped "$logs/log")
    if [ "$status" -ne 0 ]; then
        failed_stages=$((failed_stages + 1))
        # A stage that failed before any test did (a build, a missing Python) counts as one.
        [ "$failed" -gt 0 ] || failed=1
    fi
    total_passed=$((total_passed + passed))
    total_failed=$((total_failed + failed))
    total_skipped=$((total_skipped + skipped))
    summary+=("$(printf '%-14s %8s %8s %8s %8s  %s' "$name" "$passed" "$failed" "$skipped" \
        "$seconds" "$([ "$status" -eq 0 ] && echo ok || echo "FAILED (exit $status)")")")
}

# other_python VERSION: the stages of one of the other Pythons, or a failed stage saying
# why there are none.
other_python() {
    local venv=.venv-$1
    if [ ! -x "$venv/bin/python" ]; then
        stage "$1 native" sh -c "echo 'no $venv: scripts/setup.sh found no Python $1' >&2; exit 1"
        return
    fi
    stage "$1 native" "$venv/bin/python" -m pytest "${OTHER_PYTHON_TESTS[@]}" "${pytest_args[@]}"
    stage "$1 pure" env HOOKTEL_PURE_PYTHON=1 "$venv/bin/python" -m pytest tests/native tests/unit
}

pytest_args=("$@")
# On the other Pythons: what builds on the C API and what the servers see, compiled (the
# extensions' differential tests, the hook points under real servers, the registry and the
# parsing, the wheel); the whole suite there was checked by hand. This keeps CI under 30
# minutes on a 2-core machine.
OTHER_PYTHON_TESTS=(tests/native tests/unit tests/servers tests/test_packaging.py)
main=$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
stage "$main native" .venv/bin/python -m pytest "$@"
stage "$main pure" env HOOKTEL_PURE_PYTHON=1 .venv/bin/python -m pytest "$@"
stage "$main asan" bash scripts/asan.sh
stage "$main floor" bash scripts/floor.sh
for version in "${OTHER_PYTHONS[@]}"; do
    other_python "$version"
done

echo
printf '%-14s %8s %8s %8s %8s  %s\n' stage passed failed skipped seconds result
printf '%s\n' "${summary[@]}"
echo "total: $total_passed passed, $total_failed failed, $total_skipped skipped"
[ "$failed_stages" -eq 0 ]
