"""The dashboard in a real browser (Debian's headless Chromium, driven by Playwright) against
a real fleet: a real API process, a real worker running the real `claude` against the
scripted Messages API. Sign in with the keyboard, submit a task from the form and watch its
events arrive live, cancel a running task, see the plots drawn with data, sign out. Every page
is checked by axe-core (vendored) for serious or critical violations and photographed at
1280x800 and 390x844 (test artifacts; ``CCA_UI_SCREENSHOTS=DIR`` writes them there, which is
how docs/ui/ is made)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright import sync_api as playwright

from tests.conftest import start_api_process
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e
AXE = Path(__file__).parent / "vendor" / "axe-4.14.1.min.js"
ADMIN = "dashboard-admin-key-0123456789"
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    assert os.access(path, os.X_OK), "Debian's chromium is not installed (scripts/setup installs it)"
    return path


def script(*steps: dict[str, Any]) -> str:
    return f"[[script:{json.dumps({'steps': list(steps)})}]]"


@pytest.fixture
def fleet(tmp_path, config_data, start_worker) -> str:
    config = {**config_data, "daemon": {**config_data["daemon"], "require_auth": True, "api_keys": [ADMIN]},
              "dashboard": {"sample_seconds": 5}}
    start_worker("w1", daemon={"max_agents": 2}, dashboard={"sample_seconds": 5})
    return start_api_process(tmp_path, config, "dashboard")


@pytest.fixture
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium(), headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    where = Path(os.environ.get("CCA_UI_SCREENSHOTS") or tmp_path / "screenshots")
    where.mkdir(parents=True, exist_ok=True)
    return where


def open_form(page: Any) -> None:
    """Open the submit form (it starts open while there are no tasks)."""
    if page.locator("details.card").get_attribute("open") is None:
        page.get_by_text("Submit a task").click()


def serious_violations(page: Any) -> list[dict[str, Any]]:
    page.evaluate(AXE.read_text())
    found = page.evaluate("async () => (await axe.run(document)).violations"
                          ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target)}))")
    return [v for v in found if v["impact"] in ("serious", "critical")]


def test_a_user_watches_submits_cancels_and_plots_in_a_real_browser(fleet, browser, shots):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=False)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # Sign in with the keyboard: the key field is labelled, Enter submits.
    page.goto(f"{fleet}/ui/")
    assert page.url.startswith(f"{fleet}/ui/login")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.get_by_label("API key").focus()
    page.keyboard.type(ADMIN)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{fleet}/ui/tasks")
    cookie = next(c for c in context.cookies() if c["name"] == "cca_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # Submit from the form; the task page shows its events as they arrive.
    open_form(page)
    page.get_by_label("Prompt").fill("watch me " + script(
        {"tool_use": {"name": "Bash", "input": {"command": "echo first-step"}}, "delay": 0.4},
        {"tool_use": {"name": "Bash", "input": {"command": "sleep 2; echo second-step"}}, "delay": 0.4},
        {"text": "all done, watched live", "delay": 0.4}))
    page.get_by_role("button", name="Submit", exact=True).click()
    page.wait_for_url(f"{fleet}/ui/tasks/*")
    timeline = page.locator("#timeline li")
    seen_at_load = timeline.count()
    timeline.first.wait_for(timeout=30_000)
    page.get_by_text("second-step").first.wait_for(timeout=30_000)
    page.get_by_text("all done, watched live").first.wait_for(timeout=30_000)
    assert timeline.count() > seen_at_load  # arrived after the page was drawn
    page.locator("#live-state").get_by_text("ended").wait_for(timeout=30_000)
    assert page.locator("[data-status-of]").first.inner_text().startswith("succeeded")
    finished_task = page.url

    # Cancel a running task.
    page.goto(f"{fleet}/ui/tasks")
    open_form(page)
    page.get_by_label("Prompt").fill("a long one " + script({"stall": 120}))
    page.get_by_role("button", name="Submit", exact=True).click()
    page.wait_for_url(f"{fleet}/ui/tasks/*")
    page.locator("[data-status-of]").get_by_text("running").wait_for(timeout=30_000)
    page.get_by_role("button", name="Cancel task").click()
    page.get_by_text("Cancel requested.").wait_for()
    wait_for(lambda: page.reload() or page.locator("[data-status-of]").first.inner_text() == "cancelled",
             timeout_s=30, message="the running task to end cancelled")

    # Plots render with data (the finished task's tokens and dollars; a fleet sample).
    wait_for(lambda: page.goto(f"{fleet}/ui/plots") and page.evaluate(
        "JSON.parse(document.getElementById('plot-data').textContent).samples.length") > 0,
        timeout_s=30, message="a fleet sample to plot")
    page.wait_for_selector("body[data-plots-drawn=true]")
    drawn = page.evaluate("['tokens','dollars','statuses','durations','queues','slots'].map(id => "
                          "Chart.getChart(id).data.datasets.reduce((n, d) => n + d.data.length, 0))")
    assert all(count > 0 for count in drawn), drawn
    assert page.evaluate("Chart.getChart('tokens').data.datasets.reduce((n, d) => "
                         "n + d.data.reduce((a, b) => a + b, 0), 0)") > 0

    # A workflow and a schedule, so that their pages show one.
    api = {"X-API-Key": ADMIN}
    workflow = httpx.post(f"{fleet}/api/v1/workflows", headers=api, timeout=10, json={
        "name": "review-and-test", "tasks": [
            {"name": "review", "prompt": script({"text": "reviewed"})},
            {"name": "tests", "prompt": script({"text": "tested"})},
            {"name": "summary", "prompt": script({"text": "summed up"}), "depends_on": ["review", "tests"]}]})
    assert workflow.status_code == 202, workflow.text
    assert httpx.post(f"{fleet}/api/v1/schedules", headers=api, timeout=10, json={
        "name": "nightly-review", "cron": "0 3 * * *", "task": {"prompt": "review yesterday's merges"}},
    ).status_code == 201
    workflow_id = workflow.json()["id"]
    wait_for(lambda: httpx.get(f"{fleet}/api/v1/workflows/{workflow_id}", headers=api,
                               timeout=10).json()["status"] == "succeeded",
             timeout_s=60, message="the workflow to finish")

    # Every page: no serious accessibility violation; a screenshot at both sizes.
    pages = {"workflow": f"/ui/workflows/{workflow_id}", "tasks": "/ui/tasks",
             "task": finished_task.removeprefix(fleet), "workflows": "/ui/workflows",
             "workers": "/ui/workers", "queues": "/ui/queues", "schedules": "/ui/schedules",
             "plots": "/ui/plots", "keys": "/ui/keys"}
    for size, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        for name, path in pages.items():
            page.goto(f"{fleet}{path}")
            if name == "plots":
                page.wait_for_selector("body[data-plots-drawn=true]")
            page.screenshot(path=str(shots / f"{name}-{size}.png"), full_page=False)
            assert serious_violations(page) == [], (name, size)
    login_context = browser.new_context(viewport={"width": 390, "height": 844})
    login = login_context.new_page()
    login.goto(f"{fleet}/ui/login")
    login.screenshot(path=str(shots / "login-phone.png"))
    assert serious_violations(login) == []
    login.set_viewport_size({"width": 1280, "height": 800})
    login.screenshot(path=str(shots / "login-desktop.png"))
    login_context.close()

    # Sign out: the session ends.
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{fleet}/ui/tasks")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{fleet}/ui/login*")
    page.goto(f"{fleet}/ui/tasks")
    assert page.url.startswith(f"{fleet}/ui/login")
    assert errors == [], errors
    context.close()
