#!/usr/bin/env bash
# RabbitMQ for the AppHost's local mode: Debian's rabbitmq-server as a node of its own (own ports, node name,
# epmd, data folder and cookie), never the machine's shared broker. Runs in the foreground so the AppHost
# owns it; stops the node and its epmd on SIGTERM/SIGINT. Started as root, it drops to the rabbitmq user.
# Environment (set by the AppHost): LOCAL_DATA, AMQP_PORT, MANAGEMENT_PORT, DIST_PORT, EPMD_PORT,
#   RABBITMQ_USER, RABBITMQ_PASSWORD
set -euo pipefail
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || { echo "rabbitmq-server is not installed: run infra/bootstrap.sh --local-servers" >&2; exit 1; }
data=$LOCAL_DATA
if [ "$(id -u)" = 0 ]; then
  install -d -m 0700 -o rabbitmq -g rabbitmq "$data"
  chown -R rabbitmq:rabbitmq "$data"
  exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups env HOME="$data" "$0" "$@"
fi
export HOME=$data
umask 077
mkdir -p "$data/mnesia" "$data/log"
# The default user applies to a new node only; the AppHost persists its password (a parameter) across runs.
cat > "$data/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$AMQP_PORT
management.tcp.ip = 127.0.0.1
management.tcp.port = $MANAGEMENT_PORT
default_user = $RABBITMQ_USER
default_pass = $RABBITMQ_PASSWORD
CONF
echo '[rabbitmq_management].' > "$data/enabled_plugins"
: > "$data/rabbitmq-env.conf"
export RABBITMQ_CONF_ENV_FILE=$data/rabbitmq-env.conf RABBITMQ_CONFIG_FILE=$data/rabbitmq.conf \
  RABBITMQ_ENABLED_PLUGINS_FILE=$data/enabled_plugins RABBITMQ_MNESIA_BASE=$data/mnesia RABBITMQ_LOG_BASE=$data/log \
  RABBITMQ_NODENAME="aspiretune-$AMQP_PORT@localhost" RABBITMQ_DIST_PORT=$DIST_PORT RABBITMQ_LOGS=- \
  ERL_EPMD_PORT=$EPMD_PORT ERL_EPMD_ADDRESS=127.0.0.1 \
  RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
epmd -port "$EPMD_PORT" -address 127.0.0.1 &
epmd_pid=$!
# The package's own script, not the /usr/sbin wrapper (that one logs into the shared broker's folder).
/usr/lib/rabbitmq/bin/rabbitmq-server &
node_pid=$!
stop() {
  kill -TERM "$node_pid" 2>/dev/null || true
  wait "$node_pid" 2>/dev/null || true
  kill -TERM "$epmd_pid" 2>/dev/null || true
  wait "$epmd_pid" 2>/dev/null || true
  exit 0
}
trap stop TERM INT
rc=0
wait "$node_pid" || rc=$?
kill -TERM "$epmd_pid" 2>/dev/null || true
exit "$rc"
