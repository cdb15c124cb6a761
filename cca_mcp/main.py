"""Entry point of ``cca-mcp``: the bridge over stdio (default) or streamable HTTP."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from cca_core.infra.api_client import DEFAULT_URL, CcaClient
from cca_mcp.server import PARENT_ENV, make_server


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cca-mcp", description=__doc__)
    parser.add_argument("--daemon-url", default=os.environ.get("CCA_DAEMON_URL", DEFAULT_URL),
                        help="cca API base URL (env CCA_DAEMON_URL; default %(default)s)")
    parser.add_argument("--api-key", default=os.environ.get("CCA_API_KEY"),
                        help="API key (env CCA_API_KEY, then daemon.api_keys of the config "
                        "files, then the local key of `cca up`)")
    parser.add_argument("--transport", choices=["stdio", "streamable-http"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="streamable-http bind host")
    parser.add_argument("--port", type=int, default=9300, help="streamable-http port")
    parser.add_argument("--timeout", type=float, default=15.0,
                        help="seconds for each HTTP call to the API (default %(default)s)")
    return parser.parse_args(argv)


def configured_key() -> str | None:
    """The first key of the config files, else the local key of `cca up`. A fleet agent's
    bridge (``CCA_TASK_ID`` set by its worker) uses only the token it was given."""
    if os.environ.get(PARENT_ENV):
        return None
    from cca_core.errors import ConfigError
    from cca_core.infra.config import load_settings
    from cca_core.infra.local_secrets import read_local_key

    try:
        settings = load_settings()
    except ConfigError:
        return None
    return next(iter(settings.daemon.api_keys), None) or read_local_key(settings.data_dir)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)  # stdout carries the protocol
    client = CcaClient(args.daemon_url, args.api_key or configured_key(), timeout_s=args.timeout)
    server = make_server(client)
    if args.transport == "stdio":
        server.run()
    else:
        server.run("streamable-http", host=args.host, port=args.port)


if __name__ == "__main__":
    main()
