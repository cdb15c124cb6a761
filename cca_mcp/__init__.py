"""cca MCP bridge: lets a Claude Code session submit, follow and cancel fleet tasks.

Talks to the cca API over HTTP only; imports no worker or database code.
"""
