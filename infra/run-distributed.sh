#!/usr/bin/env bash
# Distributed mode without Docker: the four services as separate processes on the local RabbitMQ and
# PostgreSQL that infra/bootstrap.sh starts, with the configuration keys the Aspire AppHost would inject.
#
# Usage: infra/run-distributed.sh [start|stop|status]     (default: start)
# Environment:
#   ASPIRETUNE_DATA    data root (default ./data/distributed); each service gets a folder, artifacts are shared
#   QDRANT_URL         e.g. http://127.0.0.1:6334 (gRPC) to use a Qdrant server (embedded index otherwise)
#   QDRANT_API_KEY     its API key, when it needs one
#   ConnectionStrings__openai  "Endpoint=...;Key=..." of a hosted model (optional)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
data=$(realpath -m "${ASPIRETUNE_DATA:-$root/data/distributed}")
mkdir -p "$data/logs" "$data/pids" "$data/artifacts"

declare -A PORTS=([comparison]=5100 [evaluation]=5101 [retrieval]=5102 [finetuning]=5103)
declare -A PROJECTS=([comparison]=Comparison [evaluation]=Evaluation [retrieval]=Retrieval [finetuning]=FineTuning)
ORDER=(retrieval finetuning evaluation comparison)
PG="Host=127.0.0.1;Port=5432;Username=postgres;Password=postgres"

stop() {
  for svc in "${ORDER[@]}"; do
    pidfile="$data/pids/$svc.pid"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      kill "$(cat "$pidfile")" && echo "stopped $svc"
    fi
    rm -f "$pidfile"
  done
}

status() {
  for svc in "${ORDER[@]}"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${PORTS[$svc]}/health" || true)
    echo "$svc  http://127.0.0.1:${PORTS[$svc]}  health=$code"
  done
}

start() {
  infra/bootstrap.sh
  dotnet build AspireTune.sln -c Release -v quiet -nologo
  stop >/dev/null
  # Service discovery keys, as WithReference(...) injects them under Aspire.
  local discovery=()
  for svc in "${ORDER[@]}"; do discovery+=("services__${svc}__http__0=http://127.0.0.1:${PORTS[$svc]}"); done
  for svc in "${ORDER[@]}"; do
    local project=${PROJECTS[$svc]}
    local env=(
      "ASPNETCORE_URLS=http://127.0.0.1:${PORTS[$svc]}"
      "ASPIRETUNE_DATA=$data/$svc"
      "Artifacts__Path=$data/artifacts"
      "ConnectionStrings__messaging=amqp://guest:guest@127.0.0.1:5672/"
      "ConnectionStrings__${svc}db=$PG;Database=aspiretune_$svc"
      "${discovery[@]}"
    )
    [ -n "${QDRANT_URL:-}" ] && env+=("ConnectionStrings__vectordb=Endpoint=$QDRANT_URL${QDRANT_API_KEY:+;Key=$QDRANT_API_KEY}")
    mkdir -p "$data/$svc"
    env "${env[@]}" nohup "services/$project/bin/Release/net10.0/linux-x64/AspireTune.$project" \
      > "$data/logs/$svc.log" 2>&1 &
    echo $! > "$data/pids/$svc.pid"
  done
  for svc in "${ORDER[@]}"; do
    for _ in $(seq 1 60); do
      curl -sf "http://127.0.0.1:${PORTS[$svc]}/health" >/dev/null 2>&1 && break
      kill -0 "$(cat "$data/pids/$svc.pid")" 2>/dev/null || { echo "$svc exited; see $data/logs/$svc.log" >&2; tail -20 "$data/logs/$svc.log" >&2; exit 1; }
      sleep 1
    done
  done
  status
  echo "logs: $data/logs   stop: infra/run-distributed.sh stop"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 [start|stop|status]" >&2; exit 2 ;;
esac
