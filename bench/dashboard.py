"""(j) The dashboard's server time for its tasks page at 10^5 tasks.

The tasks table is filled with ``counts.dashboard_tasks`` rows as cca's API stores them (one
INSERT ... SELECT over generate_series, statuses and creation times spread out), then one API
host (``cca api``: gunicorn, gthread) serves a signed-in dashboard session. Timed: ``GET
/ui/tasks`` (the newest 50, rendered) and with a status filter, one request at a time, from
the request to the last byte. The baseline is the JSON the page is made from: ``GET
/api/v1/tasks?limit=50`` (and the same filter), so the ratio is what rendering the page adds.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
from sqlalchemy import Integer, String, cast, func, insert, literal, literal_column, select, text

from bench.client import timed_gets
from bench.launch import api_server
from bench.plan import Counts
from bench.producer import column_of
from bench.report import Row, Section, percentile
from bench.servers import Bench
from bench.waiting import BenchError
from cca_core.models import Task

TARGET_MS = 300.0
STATUS = "(ARRAY['succeeded','failed','cancelled','queued','running','timed_out'])[1 + (g.n % 6)]"


def measure(bench: Bench, counts: Counts) -> Section:
    bench.reset()
    began = time.monotonic()
    _fill(bench, counts.dashboard_tasks)
    filled_s = time.monotonic() - began
    rows, notes = [], []
    # The benchmark's fleet needs no key.
    with api_server(bench, processes=2) as url, httpx.Client(base_url=url, timeout=30) as browser, \
            httpx.Client(base_url=url, timeout=30) as api:
        _sign_in(browser)
        for name, page, data in (
                ("newest 50", "/ui/tasks", "/api/v1/tasks?limit=50"),
                ("status=failed", "/ui/tasks?status=failed", "/api/v1/tasks?limit=50&status=failed")):
            page_ms, data_ms = timed_gets(browser, page, counts.dashboard_requests, "j"), \
                timed_gets(api, data, counts.dashboard_requests, "j")
            for q in (50, 99):
                cca, base = percentile(page_ms, q), percentile(data_ms, q)
                target = q == 50
                rows.append(Row(f"(j) dashboard tasks page, {name}, p{q} (ms)", cca, base,
                                f"{cca / base:.2f}x" if base else "-",
                                f"<= {TARGET_MS:g}" if target else "-",
                                cca <= TARGET_MS if target else None))
        plots = {hours: percentile(timed_gets(browser, f"/ui/plots?hours={hours}", 10, "j"), 50)
                 for hours in (24, 168)}
    bench.reset()
    notes.append("(j) the plots page (its queries read the window's tasks): p50 "
                 + ", ".join(f"{value:.0f} ms over {hours} h" for hours, value in plots.items()))
    notes.append(f"(j) {counts.dashboard_tasks} tasks (filled in {filled_s:.1f} s), "
                 f"{counts.dashboard_requests} requests each, one at a time, to one API host "
                 "(2 gunicorn processes); baseline: the JSON page of the same tasks")
    return Section(rows, notes)


def _fill(bench: Bench, n: int) -> None:
    template = {key: value for key, value in bench.task_values().items()
                if key not in ("status", "created_at", "prompt")}
    series = func.generate_series(1, n).table_valued("n").render_derived(name="g")
    number = series.c.n
    columns = list(template)
    values: list[Any] = [literal(template[key], Task.__table__.c[column_of(key)].type)
                         for key in columns]
    query = select(func.gen_random_uuid(), literal_column(STATUS),
                   func.concat("bench task ", cast(number, String)),
                   func.now() - func.make_interval(0, 0, 0, 0, 0, 0, cast(number, Integer)), *values
                   ).select_from(series)
    with bench.engine.begin() as connection:
        connection.execute(insert(Task).from_select(
            ["id", "status", "prompt", "created_at", *map(column_of, columns)], query))
        connection.execute(text("ANALYZE tasks"))



def _sign_in(browser: httpx.Client) -> None:
    form = browser.get("/ui/login").text
    token = re.search(r'name="login_token" value="([^"]+)"', form)
    if token is None:
        raise BenchError("(j) the sign-in page has no form token")
    answer = browser.post("/ui/login", data={"api_key": "", "login_token": token.group(1),
                                             "next": "/ui/tasks"})
    if answer.status_code != 303 or "cca_session" not in browser.cookies:
        raise BenchError(f"(j) sign-in failed: {answer.status_code} {answer.headers.get('location')}")
