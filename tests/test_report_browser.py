"""report.html in a real browser (headless Chromium through Selenium and chromedriver), after
the reports folder has been moved: every image decodes, every in-page link has its target,
every other link (the VCDs) loads, the console stays clean and the claims table is there.
The screenshot it saves is printed (pytest -s shows the path)."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e .[dev])")

pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                reason="needs chromium and chromedriver (Debian: chromium, chromium-driver)")

FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--disable-default-apps", "--window-size=1400,1800")


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def moved_reports(tmp_path_factory) -> Path:
    """A small real run's reports/, moved (renamed, another parent) after it was written."""
    tmp = tmp_path_factory.mktemp("browser")
    first = tmp / "reports"
    p = subprocess.run([sys.executable, "-m", "harness", "scenarios", "--reports", str(first),
                        "--only", "v4.13/max-*-kvm_run-pan0-uao0-hvc", "--only", "patch-2017/max-*-kvm_run-pan0-uao0-hvc",
                        "--only", "user/*"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    moved = tmp / "archive" / "pstate-report"
    moved.parent.mkdir()
    first.rename(moved)
    return moved


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for f in FLAGS:
        opts.add_argument(f)
    opts.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-', dir=tmp_path_factory.getbasetemp())}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def served(moved_reports):
    """The moved folder's parent over HTTP on 127.0.0.1, so links are fetched as a browser would."""
    handler = functools.partial(_Quiet, directory=str(moved_reports.parent))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{moved_reports.name}/report.html"
    server.shutdown()
    server.server_close()


_CHECK = """
const done = arguments[arguments.length - 1];
const images = [...document.images].map(i => ({alt: i.alt, complete: i.complete, w: i.naturalWidth, h: i.naturalHeight}));
const anchors = [...document.querySelectorAll('a[href]')];
const internal = anchors.filter(a => a.getAttribute('href').startsWith('#'));
const missing = internal.filter(a => !document.getElementById(decodeURIComponent(a.hash.slice(1))))
                        .map(a => a.getAttribute('href'));
const external = anchors.filter(a => !a.getAttribute('href').startsWith('#'));
Promise.all(external.map(a => fetch(a.href).then(r => r.text().then(t => ({href: a.getAttribute('href'), status: r.status,
        bytes: t.length, head: t.slice(0, 40)}))).catch(e => ({href: a.getAttribute('href'), status: 0, error: String(e)}))))
  .then(fetched => done(JSON.stringify({images, internal: internal.length, missing, fetched,
        claims: document.querySelectorAll('table#claims tr').length,
        answer: (document.getElementById('answer') || {}).textContent || ''})));
"""


def test_report_in_chromium(browser, served, moved_reports, tmp_path):
    browser.get(served)
    got = json.loads(browser.execute_async_script(_CHECK))
    assert got["images"], "the report has timeline pictures"
    for img in got["images"]:
        assert img["complete"] and img["w"] > 0 and img["h"] > 0, img
    assert got["internal"] > 0 and got["missing"] == []
    vcds = [f for f in got["fetched"] if f["href"].endswith(".vcd")]
    assert vcds and len(vcds) == len(list((moved_reports / "vcd").glob("*.vcd")))
    for f in got["fetched"]:
        assert f["status"] == 200 and f["bytes"] > 0, f
        assert not f["href"].startswith(("/", "http", "file")), f   # relative: survives the move
    assert all(f["head"].startswith("$comment") for f in vcds)
    claims = json.loads((moved_reports / "run.json").read_text())
    assert claims["scenarios"] > 0
    assert got["claims"] > 1, "the claims table is present with its rows"
    assert got["answer"].startswith("Answer.") and "claims come out as follows" in got["answer"]
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == [], errors
    shot = Path(os.environ.get("REPORT_SCREENSHOT_DIR", tmp_path)) / "report.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    print(f"\nscreenshot of report.html in Chromium: {shot}")


def test_report_opened_from_disk(browser, moved_reports):
    """Opened as a file (no server), the pictures still decode and the page has no errors."""
    browser.get((moved_reports / "report.html").as_uri())
    images = browser.execute_script("return [...document.images].map(i => i.naturalWidth * i.naturalHeight)")
    assert images and all(images)
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == [], errors
