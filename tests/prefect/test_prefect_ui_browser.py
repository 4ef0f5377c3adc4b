"""The Prefect UI in a real browser, as a person uses it: Debian's chromium driven by Playwright (pointed
at the system browser; no browser is downloaded) against a real `prefect server start` with
`localize-adhoc` deployed from deployments/prefect.yaml.

- The custom-run form of localize-adhoc offers the saved RunwareCredentials blocks for `credentials`
  (a block picker, not a text box) and the three quality policies.
- A finished run's quality artifact page shows its checks table and both pictures (timeline, contact
  sheet), decoded by the browser.

Screenshots are left in the test's tmp dir (ui-*.png).
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect_operator import PREFECT_FILE, Operator, running_server, tail, wait_for

from prefect_lipsync.demo import build_demo

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
UI_TIMEOUT_MS = 90_000  # the UI's first load compiles a large bundle on a busy 2-core machine


@pytest.fixture(autouse=True)
def prefect_server() -> None:
    """Replaces the session harness of conftest.py for this module: the test starts its own server."""
    return None


@pytest.fixture
def operator(tmp_path: Path) -> Iterator[Operator]:
    with running_server(tmp_path) as op:
        yield op


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "chromium is not installed (scripts/setup.sh installs it with apt-get)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            page.set_default_timeout(UI_TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def form_property(page: Any, name: str) -> Any:
    """The field of parameter `name` in Prefect's schema form (its label reads `name` or `name (Optional)`)."""
    label = page.locator(
        ".schema-form-property__label", has_text=re.compile(rf"^\s*{name}(\s*\(Optional\))?\s*$")
    )
    return page.locator(".schema-form-property").filter(has=label).first


def open_options(page: Any, field: Any, screenshot: Path) -> list[str]:
    """Open the select of `field` (the keyboard opens Prefect's select reliably), take a screenshot
    with it open, and list its options."""
    field.locator("button.p-select-button__control").first.focus()
    page.keyboard.press("ArrowDown")
    options = page.get_by_role("option")
    options.first.wait_for()
    page.screenshot(path=str(screenshot))
    texts = [t.strip() for t in options.all_inner_texts()]
    page.keyboard.press("Escape")
    return texts


def test_custom_run_form_and_quality_artifact_in_a_real_browser(
    operator: Operator, page: Any, tmp_path: Path
) -> None:
    pool = f"lipsync-ui-{uuid.uuid4().hex[:8]}"
    created = operator.prefect("work-pool", "create", pool, "--type", "process")
    assert created.returncode == 0, tail(created)
    deployed = operator.prefect(
        "--no-prompt",
        "deploy",
        "--prefect-file",
        str(PREFECT_FILE),
        "--name",
        "localize-adhoc",
        "--pool",
        pool,
    )
    assert deployed.returncode == 0, tail(deployed)
    saved = operator.python(
        "from prefect_lipsync.blocks import RunwareCredentials\n"
        "RunwareCredentials(api_key='rw-ui-test', base_url='http://127.0.0.1:9/v1').save('team-runware')\n"
    )
    assert saved.returncode == 0, tail(saved)
    deployment = operator.get("/deployments/name/localize-video/localize-adhoc")
    ui = operator.api_url.removesuffix("/api")

    # The custom-run form.
    page.goto(f"{ui}/deployments/deployment/{deployment['id']}/run")
    credentials = form_property(page, "credentials")
    credentials.wait_for()
    credentials.get_by_role("button", name="RunwareCredentials", exact=True).click()
    credential_choices = open_options(page, credentials, tmp_path / "ui-run-form-credentials.png")
    assert "team-runware" in credential_choices, credential_choices  # the saved block, offered by name
    assert (
        credentials.get_by_role("button", name=re.compile(r"Add")).count() == 1
    )  # and a new one can be made
    policies = open_options(page, form_property(page, "quality_policy"), tmp_path / "ui-run-form-policy.png")
    assert sorted(policies) == ["ask", "fail", "warn"], policies

    # A finished run, started with the two parameters a person types (the rest are the defaults).
    manifest = build_demo(tmp_path / "demo")
    parameters = {"manifest": str(manifest), "out_dir": str(tmp_path / "out")}
    started = operator.python(
        "import json, sys\n"
        "from prefect.deployments import run_deployment\n"
        "run = run_deployment('localize-video/localize-adhoc', parameters=json.loads(sys.argv[1]), timeout=0)\n"
        "print(json.dumps({'id': str(run.id)}))\n",
        json.dumps(parameters),
    )
    assert started.returncode == 0, tail(started)
    run_id = json.loads(started.stdout.strip().splitlines()[-1])["id"]
    worker = operator.prefect("worker", "start", "--pool", pool, "--run-once", timeout=400)
    assert worker.returncode == 0, tail(worker)
    flow_run = wait_for(
        lambda: (
            (run := operator.get(f"/flow_runs/{run_id}"))["state"]["type"]
            in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
            and run
        ),
        timeout=60,
        what="a final state of the flow run",
    )
    assert flow_run["state"]["type"] == "COMPLETED", (flow_run["state"], tail(worker))
    artifacts = operator.post(
        "/artifacts/filter", {"flow_runs": {"id": {"any_": [run_id]}}, "limit": 100, "sort": "KEY_ASC"}
    )
    (quality,) = (a for a in artifacts if a["key"] == "lipsync-quality-demo-es")
    report = json.loads((tmp_path / "out" / "demo" / "demo.es.mp4.report.json").read_text())

    # Its quality artifact's page.
    page.goto(f"{ui}/artifacts/artifact/{quality['id']}")
    table = page.locator("table").filter(has_text="threshold").first
    table.wait_for()
    pictures = page.locator("img[src^='data:image/png']")
    pictures.nth(1).wait_for()
    page.wait_for_function(
        "() => [...document.querySelectorAll(\"img[src^='data:image/png']\")]"
        ".filter(i => i.complete && i.naturalWidth > 0).length >= 2"
    )
    page.screenshot(path=str(tmp_path / "ui-quality-artifact.png"), full_page=True)
    header = [t.strip() for t in table.locator("thead th").all_inner_texts()]
    assert header == ["check", "status", "value", "threshold", "finding"], header
    rows = table.locator("tbody tr")
    assert rows.count() == len(report["checks"])
    shown = {cells[0].strip(): cells for cells in (r.locator("td").all_inner_texts() for r in rows.all())}
    for check in report["checks"]:  # every row whole: its threshold (pipes and all) and its finding
        cells = shown[check["name"]]
        assert len(cells) == 5
        assert cells[3].strip() == (check["threshold"] or "")
        assert cells[4].strip() == check["message"]
    sizes = pictures.evaluate_all("imgs => imgs.map(i => [i.naturalWidth, i.naturalHeight])")
    # The timeline, the contact sheet and the lip-sync curves, each decoded by the browser.
    assert len(sizes) == 3 and all(w > 100 and h > 50 for w, h in sizes), sizes


def test_a_batch_run_shows_each_manifest_as_a_task_run_in_a_real_browser(
    operator: Operator, page: Any, tmp_path: Path
) -> None:
    """A person opens the nightly batch's flow run: each manifest is a task run named after it, with
    its languages' task runs inside, and the batch's summary is among the run's artifacts."""
    from prefect_lipsync.demo import build_batch_inbox

    build_batch_inbox(tmp_path / "inbox", 3)
    ran = operator.python(
        "import asyncio, json, sys\n"
        "from prefect_lipsync.flows.localize import localize_batch\n"
        "state = asyncio.run(localize_batch(folder=sys.argv[1], out_dir=sys.argv[2], quality_policy='warn',\n"
        "                                   return_state=True))\n"
        "print(json.dumps({'id': str(state.state_details.flow_run_id), 'type': state.type.value}))\n",
        str(tmp_path / "inbox"),
        str(tmp_path / "out"),
        timeout=400,
    )
    assert ran.returncode == 0, tail(ran)
    run = json.loads(ran.stdout.strip().splitlines()[-1])
    assert run["type"] == "COMPLETED", tail(ran)
    manifests = [f"localize-night-{i:04d}" for i in range(3)]
    task_runs = wait_for(
        lambda: (
            (
                found := operator.post(
                    "/task_runs/filter", {"task_runs": {"flow_run_id": {"any_": [run["id"]]}}, "limit": 100}
                )
            )
            and len(found) >= 33  # 3 manifests, 3 plans, 3 probes, 6 languages x 4 steps
            and found
        ),
        timeout=60,
        what="the batch's task runs recorded by the server",
    )
    names = sorted(r["name"] for r in task_runs)
    assert [n for n in names if n.startswith("localize-")] == manifests, names
    assert [n for n in names if n.startswith("plan-")] == [f"plan-night-{i:04d}" for i in range(3)], names
    # Each language's steps are task runs of the public tasks, named after their manifest and language.
    for step in ("submit", "wait", "download", "check"):
        languages = [f"{step}-night-{i:04d}-{lang}" for i in range(3) for lang in ("de", "es")]
        assert [n for n in names if n.startswith(f"{step}-")] == languages, names
    assert not operator.post(
        "/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [run["id"]]}}}
    )
    ui = operator.api_url.removesuffix("/api")

    # The run's page: its graph draws each manifest's task run with its artifacts (a canvas, so the
    # screenshot is for people); the Task Runs tab lists them by name, the Subflow Runs tab has none.
    page.goto(f"{ui}/runs/flow-run/{run['id']}")
    page.get_by_text("Task Runs", exact=True).first.click()
    for name in manifests:
        page.get_by_text(name, exact=True).first.wait_for()
    page.screenshot(path=str(tmp_path / "ui-batch-task-runs.png"), full_page=True)
    page.get_by_text("Artifacts", exact=True).first.click()
    page.get_by_text("lipsync-batch-inbox", exact=True).first.wait_for()
    page.get_by_text("lipsync-jobs-night-0002", exact=True).first.wait_for()
    page.screenshot(path=str(tmp_path / "ui-batch-artifacts.png"), full_page=True)
