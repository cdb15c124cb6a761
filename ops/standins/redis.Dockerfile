# Stand-in for redis:7-alpine: bookworm's redis-server (7.0), `sh` and `redis-cli` (the
# compose files' command and health check), its data in /data as in the official image.
FROM cca-standin/debian:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -m 0755 /data
WORKDIR /data
VOLUME /data
EXPOSE 6379
CMD ["redis-server"]
