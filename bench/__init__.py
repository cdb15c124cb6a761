"""Benchmark of cca against bare baselines, run with ``python -m bench [--quick]``.

Each measurement runs cca and a baseline side by side in the same invocation, on the same
embedded Redis and Postgres (started in a temporary directory and migrated):

(a) submissions/s: ``POST /api/v1/tasks`` through gunicorn vs a bare INSERT + ``send_task``;
(b) latency from submit to the start of ``claude`` vs bare ``apply_async`` to task start;
(c) tasks/s through one worker with 8 slots vs a bare prefork worker spawning the same
    stand-in for ``claude``.

It prints absolute numbers and ratios; it asserts nothing about timing.
"""
