"""`dvc plots show` draws every chart offline: rendered in headless Chromium with DNS blocked.

DVC's own page loads vega from a CDN (dvc#5679); .dvc/config.local (written by `make install`)
points DVC at .dvc/plots_template.html, which scripts/plots_template.py fills with the npm
builds. The negative control renders DVC's default page the same way and must come out blank,
so the check itself is known to fail when the charts do not draw. The run is the session's
shared `dvc repro` (conftest.pipeline); the pages are written outside it.
"""

import importlib.util
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import ROOT, TEMPLATE, sh

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # no network at all: a CDN script cannot load
    "--virtual-time-budget=15000",
]
# Injected first into a copy of the page: records script errors and images that failed to load.
RECORDER = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message)));
window.addEventListener('unhandledrejection',
  e => window.__errors.push('unhandled: ' + String(e.reason)));
const __consoleError = console.error;
console.error = (...args) => {
  window.__errors.push(args.map(String).join(' '));
  __consoleError(...args);
};
window.addEventListener('load', () => {
  const broken = [...document.images]
    .filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src);
  setTimeout(() => {
    const out = document.createElement('pre');
    out.id = '__report';
    out.textContent = JSON.stringify({errors: window.__errors, broken_images: broken});
    document.body.appendChild(out);
  }, 5000);
});
</script>"""


def load_template_script():
    spec = importlib.util.spec_from_file_location(
        "plots_template", ROOT / "scripts" / "plots_template.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Plots(HTMLParser):
    """Per plot on a DVC page: whether its div holds drawn vega marks, and the page's images."""

    VOID = {"img", "br", "meta", "input", "link", "hr", "source", "area", "col", "embed", "wbr"}

    def __init__(self):
        super().__init__()
        self.stack: list[str | None] = []  # the plot id each open element belongs to
        self.vega: dict[str, bool] = {}  # plot id → drew (canvas or svg marks inside its div)
        self.images: list[str] = []
        self.report: str = ""
        self._in_report = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        owner = self.stack[-1] if self.stack else None
        if tag == "div" and attrs.get("id") and owner is None and attrs["id"] != "__report":
            owner = attrs["id"]
        if owner and (tag == "canvas" or (tag == "svg" and "marks" in (attrs.get("class") or ""))):
            self.vega[owner] = True
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        self._in_report = tag == "pre" and attrs.get("id") == "__report"
        if tag not in self.VOID:
            self.stack.append(owner)

    def handle_endtag(self, tag):
        if tag not in self.VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data):
        if self._in_report:
            self.report += data
        elif "vegaEmbed(" in data and self.stack and self.stack[-1]:
            self.vega.setdefault(self.stack[-1], False)


def parse(html: str) -> Plots:
    page = Plots()
    page.feed(html)
    return page


def render(page: Path, tmp: Path) -> tuple[Plots, dict]:
    """The DOM Chromium ends with after running the page offline, and the recorded errors."""
    probed = page.with_name("probed.html")  # beside the page, so its relative image paths resolve
    probed.write_text(
        page.read_text(encoding="utf8").replace("<head>", "<head>\n" + RECORDER, 1), encoding="utf8"
    )
    profile = tmp / f"chromium-profile-{page.parent.name}"
    dom = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", probed.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    ).stdout
    rendered = parse(dom)
    assert rendered.report, "the page never finished loading (no report from the recorder)"
    return rendered, json.loads(rendered.report)


@pytest.fixture
def run(request) -> Path:
    """The session's tiny real run (conftest.pipeline: what git would commit, plus the built
    template), once Chromium and the offline template are known to be there. Tests write their
    pages outside it, into their own tmp_path."""
    if not CHROMIUM:
        pytest.skip(
            "Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)"
        )
    if load_template_script().OFFLINE_MARK not in (
        TEMPLATE.read_text() if TEMPLATE.exists() else ""
    ):
        pytest.skip(
            f"{TEMPLATE.relative_to(ROOT)} has no inlined vega (npm missing at `make install`?)"
        )
    return request.getfixturevalue("pipeline")  # only now: a skipped test costs no dvc repro


@pytest.mark.e2e
@pytest.mark.slow
def test_offline_template_draws_every_plot(run, tmp_path):
    sh(run, "dvc", "plots", "show", "-o", str(tmp_path / "offline"))
    page = tmp_path / "offline" / "index.html"
    assert "cdn.jsdelivr.net" not in page.read_text()
    expected = parse(page.read_text())
    assert {"loss", "accuracy", "features-pre-norm", "features-post-norm"} <= set(expected.vega)
    rendered, report = render(page, tmp_path)
    assert report["errors"] == []
    assert rendered.vega == {plot: True for plot in expected.vega}, "some charts did not draw"
    assert (
        len(expected.images) >= 3 and report["broken_images"] == []
    )  # explain, confusion, misclassified


@pytest.mark.e2e
@pytest.mark.slow
def test_check_fails_on_dvcs_default_cdn_page(run, tmp_path):
    """Negative control: DVC's own page, offline, draws nothing and the check sees it."""
    from dvc_render.html import PAGE_HTML

    default = tmp_path / "dvc_default.html"
    default.write_text(PAGE_HTML)
    sh(run, "dvc", "plots", "show", "-o", str(tmp_path / "cdn"), "--html-template", str(default))
    rendered, report = render(tmp_path / "cdn" / "index.html", tmp_path)
    assert rendered.vega and not any(rendered.vega.values())
    assert any("vegaEmbed is not defined" in e for e in report["errors"])


def test_template_inlines_the_libraries_or_falls_back_to_dvcs_page(tmp_path):
    """With node_modules the page has the three builds and no CDN; without, DVC's own page
    (still valid)."""
    script = load_template_script()
    fallback, offline = script.render(tmp_path / "no_node_modules")
    assert not offline and "{scripts}" in fallback and "{plot_divs}" in fallback
    modules = tmp_path / "node_modules"
    for i, lib in enumerate(script.LIBRARIES):
        (modules / lib).parent.mkdir(parents=True)
        (modules / lib).write_text(f"var lib{i} = {i};\n//# sourceMappingURL=x.min.js.map\n")
    inlined, offline = script.render(modules)
    assert offline and "{scripts}" not in inlined and "{plot_divs}" in inlined
    assert [inlined.index(f"var lib{i} = {i};") for i in range(3)] == sorted(
        inlined.index(f"var lib{i} = {i};") for i in range(3)
    )  # vega, vega-lite, then vega-embed
    assert "sourceMappingURL" not in inlined
