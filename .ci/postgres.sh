#!/usr/bin/env bash
# A throwaway PostgreSQL on 127.0.0.1 for the shared-study tests of autodata.tune.
#
#   eval "$(.ci/postgres.sh)"        # installs (apt-get) if missing, starts, exports the URL
#   .ci/postgres.sh stop             # stops it (the data directory stays under /tmp)
#
# stdout carries only the `export AUTODATA_TEST_POSTGRES_URL=...` line (so `eval` works);
# progress goes to stderr. Safe to run again: a running server is reused.
# Settings (environment): AUTODATA_PG_PORT (55432), AUTODATA_PG_DIR (/tmp/autodata-postgres).
set -euo pipefail

PORT="${AUTODATA_PG_PORT:-55432}"
DIR="${AUTODATA_PG_DIR:-/tmp/autodata-postgres}"
USER_NAME=autodata
PASSWORD=autodata-test
DB=autodata_test

say() { echo "postgres.sh: $*" >&2; }

pg_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

BIN="$(pg_bin)"
if [ -z "$BIN" ]; then
    say "installing PostgreSQL from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq postgresql >/dev/null
    BIN="$(pg_bin)"
fi
[ -n "$BIN" ] || { say "no PostgreSQL binaries found after installing"; exit 1; }

# PostgreSQL refuses to run as root: run its tools as the postgres user then.
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

if [ "${1:-start}" = stop ]; then
    as_owner "$BIN/pg_ctl" -D "$DIR" -m fast stop >&2 || true
    exit 0
fi

if [ ! -s "$DIR/PG_VERSION" ]; then
    say "creating a cluster in $DIR"
    mkdir -p "$DIR"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$DIR"
    chmod 700 "$DIR"
    pwfile="$(mktemp)"
    printf '%s\n' "$PASSWORD" >"$pwfile"
    [ "$(id -u)" = 0 ] && chown postgres "$pwfile"
    as_owner "$BIN/initdb" -D "$DIR" -U "$USER_NAME" --pwfile="$pwfile" --auth=scram-sha-256 -E UTF8 >/dev/null
    rm -f "$pwfile"
fi

if ! as_owner "$BIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
    say "starting on 127.0.0.1:$PORT"
    as_owner "$BIN/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c max_connections=200" start >/dev/null
fi

export PGPASSWORD="$PASSWORD"
if ! "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U "$USER_NAME" -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
    say "creating database $DB"
    "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U "$USER_NAME" "$DB"
fi

URL="postgresql+psycopg2://$USER_NAME:$PASSWORD@127.0.0.1:$PORT/$DB"
echo "export AUTODATA_TEST_POSTGRES_URL='$URL'"
