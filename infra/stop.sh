#!/usr/bin/env bash
# Stop the services started by infra/bootstrap.sh (RabbitMQ, PostgreSQL 15), if running.
set -euo pipefail
log() { printf '[stop] %s\n' "$*"; }

if command -v rabbitmqctl >/dev/null 2>&1 && timeout 30 rabbitmqctl -q status >/dev/null 2>&1; then
  timeout 60 rabbitmqctl -q stop >/dev/null
  log "rabbitmq: stopped"
else
  log "rabbitmq: not running"
fi

if command -v pg_lsclusters >/dev/null 2>&1 \
   && pg_lsclusters -h 15 main 2>/dev/null | awk '$4=="online"{f=1} END{exit !f}'; then
  pg_ctlcluster 15 main stop
  log "postgresql: stopped"
else
  log "postgresql: not running"
fi
