# Stand-in for haproxy:2.8: bookworm's haproxy (2.6; Debian has no 2.8 for bookworm), run as
# the official image runs it: master-worker, in the foreground, on
# /usr/local/etc/haproxy/haproxy.cfg, as user haproxy.
FROM cca-standin/debian:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends haproxy \
 && rm -rf /var/lib/apt/lists/* \
 && install -d /usr/local/etc/haproxy
USER haproxy
STOPSIGNAL SIGUSR1
CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
