"""End to end in headless Chromium (Debian's /usr/bin/chromium driven by Playwright): every page of a
small real project, numbers against the store, sorting, filtering, a plot, nothing loaded from outside
the machine; screenshots under tmp_path (DASHBOARD_SCREENSHOTS=DIR copies them there)."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest
from dashboard_project import XSS_NAME, build_project, load_db

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def playwright_api():
    """Missing tools fail the test (never skip): `.ci/run` installs playwright (test extra) and chromium."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"needs Debian's chromium at {CHROMIUM}: apt-get install -y chromium (as .ci/run does)")
    try:
        import playwright.sync_api
    except ImportError:
        pytest.fail('needs playwright: pip install -e ".[test]"')
    return playwright.sync_api


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from werkzeug.serving import make_server

    from sld_workflows.dashboard import SnapshotSource, create_app

    tmp = tmp_path_factory.mktemp("browser")
    project = build_project(tmp)
    server = make_server("127.0.0.1", 0, create_app(SnapshotSource(project["store_file"])), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    project["url"] = f"http://127.0.0.1:{server.server_port}"
    project["shots"] = tmp / "screenshots"
    project["shots"].mkdir()
    yield project
    server.shutdown()
    thread.join(5)


@pytest.fixture(scope="module")
def browser_page(served, playwright_api):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        requested: list[str] = []
        errors: list[str] = []
        page.on("request", lambda r: requested.append(r.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        yield page, requested, errors
        browser.close()


def _shot(page, served, name):
    path = served["shots"] / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    target = os.environ.get("DASHBOARD_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)
    assert path.stat().st_size > 10_000
    return path


def test_every_page_in_chromium(served, browser_page):
    page, requested, errors = browser_page
    url, ids = served["url"], served["ids"]
    db = load_db(served["store_file"])

    # trajectories: numbers against the store
    page.goto(f"{url}/trajectories")
    assert page.locator("#total").inner_text() == "4"
    for key in ("fe_a", "fe_npt"):
        doc = db["sld_trajectories"].find_one({"_id": ids[key]})
        row = page.locator(f"tr[data-id='{ids[key]}']")
        assert row.locator("td.steps").inner_text() == f"{doc['steps_done']} / {doc['steps_requested']}"
        assert row.locator("td.energy").inner_text() == f"{doc['last_energy_ev']:.6f}"
        assert row.locator("td.state").inner_text() == doc["status"] == "COMPLETED"
    # the <script> name shows as text, and did not run
    assert page.get_by_text(XSS_NAME).count() == 1
    _shot(page, served, "trajectories")

    # sorting: click the "steps done" header twice (ascending, then descending)
    page.click("a[data-sort='steps_done']")
    page.wait_for_url("**sort=steps_done**")
    asc = [int(t.split(" / ")[0]) for t in page.locator("td.steps").all_inner_texts()]
    assert asc == sorted(asc) and asc[0] == 0
    page.click("a[data-sort='steps_done']")
    page.wait_for_url("**order=desc**")
    desc = [int(t.split(" / ")[0]) for t in page.locator("td.steps").all_inner_texts()]
    assert desc == sorted(asc, reverse=True) and desc[0] == 12

    # filtering: state READY through the form
    page.select_option("select[name=state]", "READY")
    page.click("#apply")
    page.wait_for_url("**state=READY**")
    assert page.locator("#total").inner_text() == "1"
    assert page.locator("td.name a").all_inner_texts() == ["fe_queued"]
    page.fill("input[name=q]", "npt")
    page.select_option("select[name=state]", "")
    page.click("#apply")
    page.wait_for_url("**q=npt**")
    assert page.locator("td.name a").all_inner_texts() == ["fe_npt"]

    # one trajectory: facts, Fireworks, plots
    tid = ids["fe_npt"]
    page.click("td.name a")
    page.wait_for_url(f"**/trajectories/{tid}")
    page.wait_for_selector("#plots[data-loaded='series']", timeout=20_000)
    page.wait_for_selector("#plots[data-spins-loaded='1']", timeout=20_000)
    doc = db["sld_trajectories"].find_one({"_id": tid})
    assert page.locator("#f-steps").inner_text() == f"{doc['steps_done']} / {doc['steps_requested']}"
    n_fw = db["fireworks"].count_documents({"spec.sld.trajectory": tid})
    assert page.locator("#fireworks tbody tr").count() == n_fw == 8
    energies = [f["energy_ev"] for f in db["sld_frames"].find({"trajectory": tid, "kind": "evaluation"}).sort("step")]
    plotted = page.evaluate("document.getElementById('plot-energy').data[0].y")
    assert plotted == energies
    names = page.evaluate("document.getElementById('plot-temperature').data.map(t => t.name)")
    assert names == ["T lattice", "T spin"]
    assert page.evaluate("document.getElementById('plot-cell').data.length") == 4  # a, b, c, volume (NpT)
    assert page.evaluate("document.getElementById('plot-spins').data[0].type") == "cone"
    # exercise the plot: zoom the energy plot's time axis through Plotly, as a drag would
    page.evaluate("Plotly.relayout('plot-energy', {'xaxis.range': [0.2, 0.5]})")
    assert page.evaluate("document.getElementById('plot-energy').layout.xaxis.range") == [0.2, 0.5]
    page.hover("#plot-energy .draglayer")
    _shot(page, served, "trajectory")

    # campaigns, one campaign, workers, overview, a 404
    page.goto(f"{url}/campaigns")
    assert page.locator("#campaigns tr[data-campaign='fe_demo']").count() == 1
    page.click("text=fe_demo")
    page.wait_for_url("**/campaigns/fe_demo")
    steps = sum(d["steps_done"] for d in db["sld_trajectories"].find({"campaign": "fe_demo", "arm": "sld"}))
    assert page.locator("tr[data-arm='sld'] td.steps").inner_text() == f"{steps} / 25"
    _shot(page, served, "campaign")
    page.goto(f"{url}/workers")
    assert page.locator("#workers tbody tr").count() == 1
    _shot(page, served, "workers")
    page.goto(f"{url}/")
    assert page.locator("#n-trajectories").inner_text() == "4"
    assert not errors, errors  # no script error on any page (the <script> name never ran)
    response = page.goto(f"{url}/trajectories/sld-nope")
    assert response.status == 404 and "unknown trajectory id" in page.locator("#error-message").inner_text()

    # nothing was requested from outside the machine
    hosts = {urlparse(u).hostname for u in requested if not u.startswith(("data:", "blob:"))}
    assert hosts == {"127.0.0.1"}, hosts
    assert len(requested) > 20
