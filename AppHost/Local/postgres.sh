#!/usr/bin/env bash
# PostgreSQL for the AppHost's local mode: Debian's server binaries on a cluster of its own (own port, data
# folder and socket folder), never the machine's shared cluster. Runs in the foreground so the AppHost owns
# it; a fast shutdown on SIGTERM/SIGINT. Started as root, it drops to the postgres user.
# Environment (set by the AppHost): LOCAL_DATA, POSTGRES_PORT, POSTGRES_PASSWORD
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bin/postgres" ] || { echo "PostgreSQL is not installed: run infra/bootstrap.sh --local-servers" >&2; exit 1; }
data=$LOCAL_DATA
if [ "$(id -u)" = 0 ]; then
  install -d -m 0700 -o postgres -g postgres "$data"
  chown -R postgres:postgres "$data"
  exec setpriv --reuid=postgres --regid=postgres --init-groups env HOME="$data" "$0" "$@"
fi
umask 077
mkdir -p "$data/run"
if [ ! -s "$data/pgdata/PG_VERSION" ]; then
  # Peer authentication on the socket (this script, as the owner, sets the password below); passwords over TCP.
  "$bin/initdb" -D "$data/pgdata" -U postgres --auth-local=peer --auth-host=scram-sha-256 -E UTF8 >/dev/null
fi
"$bin/postgres" -D "$data/pgdata" -p "$POSTGRES_PORT" -c listen_addresses=127.0.0.1 \
  -c unix_socket_directories="$data/run" -c logging_collector=off &
pid=$!
trap 'kill -INT "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; exit 0' TERM INT
# The password is the AppHost's secret parameter of this run: set it once the server answers.
for _ in $(seq 1 120); do
  "$bin/pg_isready" -q -h "$data/run" -p "$POSTGRES_PORT" && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.5
done
printf "ALTER USER postgres WITH PASSWORD '%s';\n" "${POSTGRES_PASSWORD//\'/\'\'}" \
  | "$bin/psql" -X -q -h "$data/run" -p "$POSTGRES_PORT" -U postgres -d postgres >/dev/null
wait "$pid"
