"""cca core: what the API, the workers, the CLI and the MCP bridge share.

One package per domain (``tasks``, ``schedules``, ``access``, ``fleet``) over ``infra``
(configuration, database, embedded servers, logging, redaction, the HTTP client); the
cross-cutting modules (``errors``, ``names``, ``settings``, ``rules``, ``models``) sit at the
top. docs/architecture.md says which module owns what. Imports neither flask nor celery;
importing it opens no connection.
"""

__version__ = "0.1.0"
