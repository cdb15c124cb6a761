# Stand-in for pgvector/pgvector:pg16: the PostgreSQL 16 with pgvector that pgserver (cca's
# embedded default) ships, behind an entrypoint that honours the official image's
# POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, PGDATA and /docker-entrypoint-initdb.d.
FROM cca-standin/debian:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends libreadline8 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 999 postgres \
 && useradd --system --uid 999 --gid postgres --home-dir /var/lib/postgresql --create-home postgres \
 && install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data \
 && install -d -o postgres -g postgres -m 2777 /var/run/postgresql \
 && install -d /docker-entrypoint-initdb.d
# pgserver's layout as installed (its binaries find their libraries at
# $ORIGIN/../../../pgserver.libs).
COPY pgserver /opt/pgserver
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
# PGHOST: the socket where the official build's clients look by default (pg_isready, psql).
ENV PATH=/opt/pgserver/pgserver/pginstall/bin:$PATH PGDATA=/var/lib/postgresql/data LANG=C.UTF-8 \
    PGHOST=/var/run/postgresql
VOLUME /var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
