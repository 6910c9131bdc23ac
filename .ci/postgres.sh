#!/usr/bin/env bash
# A local PostgreSQL for Optuna studies (make postgres; .ci/run calls it before the slow tests):
# installs Debian's postgresql if missing, starts a private server on 127.0.0.1:$PGPORT
# (default 55432; data in $PG_DIR, default /var/tmp/lhl-postgres) with user and database
# "optuna", password "optuna". Running it again with the server up changes nothing.
set -euo pipefail
PORT=${PGPORT:-55432}
DATA=${PG_DIR:-/var/tmp/lhl-postgres}
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_postgres() { runuser -u postgres -- "$@"; }
if [ ! -f "$DATA/PG_VERSION" ]; then
  mkdir -p "$DATA" && chown postgres "$DATA" && chmod 700 "$DATA"
  # the socket (trust, for setting up) and TCP on loopback with passwords
  as_postgres "$BIN/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 >/dev/null
fi
if ! as_postgres "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
  as_postgres "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w \
    -o "-p $PORT -k /tmp -c listen_addresses=127.0.0.1" start >/dev/null
fi
psql_() { as_postgres "$BIN/psql" -h /tmp -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -tAq "$@"; }
if [ -z "$(psql_ -c "SELECT 1 FROM pg_roles WHERE rolname = 'optuna'")" ]; then
  psql_ -c "CREATE USER optuna PASSWORD 'optuna'"
fi
if [ -z "$(psql_ -c "SELECT 1 FROM pg_database WHERE datname = 'optuna'")" ]; then
  psql_ -c "CREATE DATABASE optuna OWNER optuna"
fi
echo "PostgreSQL on 127.0.0.1:$PORT: hydra.sweeper.storage=postgresql://optuna:optuna@127.0.0.1:$PORT/optuna"
