# Stand-in for python:3.11-slim: bookworm's Python 3.11 with pip and venv, `python` and `pip`
# on PATH as in the official image, and without the EXTERNALLY-MANAGED marker (the official
# image's pip installs into the system, so this one must too).
FROM cca-standin/debian:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-pip python3-venv ca-certificates netbase \
 && rm -rf /var/lib/apt/lists/* /usr/lib/python3.11/EXTERNALLY-MANAGED \
 && ln -s /usr/bin/python3 /usr/local/bin/python \
 && ln -s /usr/bin/pip3 /usr/local/bin/pip
ENV LANG=C.UTF-8
CMD ["python3"]
