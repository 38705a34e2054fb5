#!/usr/bin/env bash
# The whole test suite: bootstrap (libstdc++, RabbitMQ, PostgreSQL on 127.0.0.1), build, every test project,
# then one line "N passed, N failed" counted from the TRX reports.
# Extra arguments go to each `dotnet test` (e.g. -- --filter-class "*Security*" --ignore-exit-code 8).
set -uo pipefail
cd "$(dirname "$0")/.."

infra/bootstrap.sh || { echo "0 passed, 1 failed"; exit 1; }

results=TestResults
rm -rf "$results"
rc=0
dotnet build AspireTune.sln -nologo -v quiet || { echo "0 passed, 1 failed"; exit 1; }
# One project at a time, each with its own report file (reports named by timestamp can collide when run together).
projects=$(grep -o 'tests[\/][A-Za-z]*\.Tests[\/][A-Za-z.]*\.Tests\.csproj' AspireTune.sln | tr '\\' '/')
for project in $projects; do
  name=$(basename "$project" .csproj)
  dotnet test --project "$project" --no-build --report-xunit-trx --report-xunit-trx-filename "$name.trx" --results-directory "$results" "$@" || rc=$?
done

passed=0; failed=0; reports=0
for trx in "$results"/*.trx; do
  [ -f "$trx" ] || continue
  reports=$((reports + 1))
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
  p=$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters"); f=$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")
  e=$(sed -n 's/.* error="\([0-9]*\)".*/\1/p' <<<"$counters"); t=$(sed -n 's/.* timeout="\([0-9]*\)".*/\1/p' <<<"$counters")
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0} + ${e:-0} + ${t:-0}))
done
# A test project that crashed (or did not build) wrote no report: count it as a failure, never as silence.
expected=$(echo "$projects" | wc -w)
if [ "$reports" -lt "$expected" ]; then failed=$((failed + expected - reports)); fi
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
# Name each failed test and the first line of its message, so a CI log's tail says what failed.
for trx in "$results"/*.trx; do
  [ -f "$trx" ] || continue
  tr '\n\r' '  ' <"$trx" | sed 's/<UnitTestResult /\n&/g' | grep -E '^<UnitTestResult [^>]*outcome="(Failed|Error|Timeout)"' \
    | sed -E 's/^[^>]*testName="([^"]*)"[^>]*>(.*<Message>([^<]{0,300}))?.*/FAILED \1: \3/'
done
# The bad-input sweeps (issue 12) say how many requests they sent.
grep -ho 'Bad-input sweep of[^&<]*' "$results"/*.trx 2>/dev/null || true
echo "$passed passed, $failed failed"
exit "$rc"
