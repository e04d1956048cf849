# Start and stop a throwaway PostgreSQL server for the store tests (sourced by .ci/run).
# Installs Debian's postgresql package when the server binaries are missing.

PG_PORT="${PG_PORT:-55432}"

start_postgres() {
  local bindir
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    echo "installing PostgreSQL from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
    bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  PG_BIN="$bindir"
  PG_DATA=$(mktemp -d /tmp/garrison-pg.XXXXXX)
  chown postgres:postgres "$PG_DATA"
  su postgres -s /bin/sh -c "'$PG_BIN/initdb' -D '$PG_DATA' --auth=trust --username=postgres -E UTF8 >/dev/null"
  su postgres -s /bin/sh -c "'$PG_BIN/pg_ctl' -D '$PG_DATA' -o '-p $PG_PORT -k /tmp -c listen_addresses=127.0.0.1' -l '$PG_DATA/server.log' -w start >/dev/null"
  "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc 'CREATE DATABASE garrison_test' >/dev/null
  export GARRISON_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/garrison_test"
  echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') running on 127.0.0.1:$PG_PORT for the store tests"
}

stop_postgres() {
  if [ -n "${PG_DATA:-}" ]; then
    su postgres -s /bin/sh -c "'$PG_BIN/pg_ctl' -D '$PG_DATA' -m fast -w stop >/dev/null" || true
    rm -rf "$PG_DATA"
  fi
}
