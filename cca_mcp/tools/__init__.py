"""The bridge's tools, one module per thing they serve, each with ``register(server, api)``."""
