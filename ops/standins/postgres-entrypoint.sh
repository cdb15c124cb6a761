#!/bin/bash
# The official postgres image's start-up, in short: as root, own the data directory and go
# on as postgres; on an empty data directory, initdb with POSTGRES_USER and
# POSTGRES_PASSWORD (scram-sha-256 for every TCP client), create POSTGRES_DB, run
# /docker-entrypoint-initdb.d/*.sh and *.sql on a server listening on its socket only; then
# run the command (postgres, listening on every address).
set -euo pipefail

if [ "$(id -u)" = 0 ]; then
    install -d -o postgres -g postgres -m 0700 "$PGDATA"
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set (the official image refuses to start without it too)}"
    user="${POSTGRES_USER:-postgres}"
    db="${POSTGRES_DB:-$user}"
    initdb --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
           --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 \
           -D "$PGDATA" >/dev/null
    printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" -w start >/dev/null
    export PGUSER="$user"
    if [ "$db" != postgres ]; then
        psql -v ON_ERROR_STOP=1 -d postgres -q -c "CREATE DATABASE \"$db\""
    fi
    for script in /docker-entrypoint-initdb.d/*; do
        case "$script" in
            *.sh) echo "running $script"; . "$script" ;;
            *.sql) echo "running $script"; psql -v ON_ERROR_STOP=1 -d "$db" -q -f "$script" ;;
            *.sql.gz) echo "running $script"; gunzip -c "$script" | psql -v ON_ERROR_STOP=1 -d "$db" -q ;;
            *) [ -e "$script" ] && echo "ignoring $script" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    unset PGUSER
    echo "PostgreSQL init process complete; ready for start up."
fi

if [ "${1:-}" = postgres ]; then
    exec postgres -c listen_addresses='*' -c unix_socket_directories=/var/run/postgresql "${@:2}"
fi
exec "$@"
