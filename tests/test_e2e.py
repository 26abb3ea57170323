"""End-to-end: the dashboard in a real headless Chromium (Playwright driving Debian's chromium).

Starts the app on a free port, opens every page, changes an input and sees the numbers change,
opens a shared URL and sees the same scenario, uploads a config.json, and saves a screenshot of each
page under build/screenshots/. Skips, saying why, where Chromium or Playwright is missing; CI
installs both (.ci/run).
"""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("KVDASH_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "build" / "screenshots"
# url paths; the default page (Memory) lives at the root
PAGES = {"memory": "", "gpus": "gpus", "scaling": "scaling", "compare": "compare", "serving": "serving",
         "speed": "speed", "plan": "plan", "live": "live", "learn": "learn"}

if not Path(CHROMIUM).exists():
    pytest.skip("no Chromium at /usr/bin/chromium: `apt-get install chromium` to run the browser tests",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def fake_hub():
    """The Hugging Face Hub, replayed from recordings (no network): the int8 Llama, a gated model the server's
    token may read, and one it may not."""
    from tests.hub_replay import LLAMA_INT8, FakeHub, recorded, start_server

    _, hub = start_server(FakeHub(repos={LLAMA_INT8: {"main": recorded(LLAMA_INT8)},
                                         "meta-llama/Llama-3.1-8B": {"main": recorded(LLAMA_INT8)},
                                         "google/gated-model": {"main": recorded(LLAMA_INT8)}},
                                  gated={"meta-llama/Llama-3.1-8B": {HF_TOKEN}, "google/gated-model": set()}))
    yield hub
    hub.shutdown()


HF_TOKEN = "hf_e2e_granted"  # the server's token: the fake Hub lets it read meta-llama/Llama-3.1-8B only


@pytest.fixture(scope="module")
def server(tmp_path_factory, fake_hub):
    hub_url = fake_hub.url
    port = _free_port()
    env = dict(os.environ, KVDASH_DATA_DIR=str(tmp_path_factory.mktemp("kvdash-data")), HF_ENDPOINT=hub_url,
               HF_HOME=str(tmp_path_factory.mktemp("hf-home")),  # huggingface_hub's cache, not the user's
               HF_TOKEN=HF_TOKEN)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("the dashboard did not start within 60 s")
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    ctx.close()


def metric(page, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return box.locator('[data-testid="stMetricValue"]').inner_text()


def wait_for_metric(page, label: str, expected: str) -> None:
    page.wait_for_function(
        """([label, expected]) => [...document.querySelectorAll('[data-testid="stMetric"]')].some(
             m => m.innerText.includes(label) && m.querySelector('[data-testid="stMetricValue"]')
                  .innerText.trim() === expected)""", arg=[label, expected])


def open_page(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("h1")
    page.wait_for_load_state("networkidle")


@pytest.mark.parametrize("name", PAGES)
def test_every_page_opens_and_is_saved(page, server, name):
    open_page(page, f"{server}/{PAGES[name]}")
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.get_by_text("Page not found").count() == 0
    assert page.get_by_text("Deploy", exact=True).count() == 0  # no developer toolbar for viewers
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(2000)
    if page.locator('[data-testid="stPlotlyChart"]').count():  # let the charts draw
        page.locator(".main-svg").first.wait_for()
        page.wait_for_timeout(1000)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


# For every chart on a page: the legend's box must not cover the plot area, and the title must lie within
# the chart; boxes are the rendered SVG elements' client rectangles.
CHART_BOXES = """() => [...document.querySelectorAll('.js-plotly-plot')].map(div => {
    const box = e => { if (!e) return null; const r = e.getBoundingClientRect();
                       return r.width && r.height ? [r.left, r.top, r.right, r.bottom] : null; };
    return {chart: box(div), plot: box(div.querySelector('.nsewdrag')),
            legend: box(div.querySelector('.legend')), title: box(div.querySelector('.gtitle'))};
})"""


def _overlap(a, b) -> bool:
    return a[0] < b[2] - 1 and b[0] < a[2] - 1 and a[1] < b[3] - 1 and b[1] < a[3] - 1


@pytest.mark.parametrize("name", list(PAGES))
def test_charts_fit_a_phone(browser, server, name):
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1)
    phone = ctx.new_page()
    phone.set_default_timeout(30_000)
    try:
        open_page(phone, f"{server}/{PAGES[name]}")
        phone.wait_for_timeout(2500)
        if phone.locator('[data-testid="stPlotlyChart"]').count():
            phone.locator(".main-svg").first.wait_for()
            phone.wait_for_timeout(1000)
        SHOTS.mkdir(parents=True, exist_ok=True)
        phone.screenshot(path=str(SHOTS / f"phone-{name}.png"), full_page=True)
        boxes = phone.evaluate(CHART_BOXES)
        assert all(c["plot"] for c in boxes if c["legend"]), "every chart with a legend has a plot area"
        for i, c in enumerate(boxes):
            if c["legend"] and c["plot"]:
                assert not _overlap(c["legend"], c["plot"]), f"{name} chart {i}: the legend covers the data"
            if c["title"] and c["chart"]:
                assert c["title"][0] >= c["chart"][0] - 1 and c["title"][2] <= c["chart"][2] + 1, \
                    f"{name} chart {i}: the title is cut ({c['title']} outside {c['chart']})"
    finally:
        ctx.close()


def test_memory_opens_at_its_own_path_too(page, server):
    open_page(page, f"{server}/memory")
    assert page.get_by_text("Page not found").count() == 0
    wait_for_metric(page, "KV cache", "1.00 GiB")  # the Memory page's default scenario
    # the navigation lists Memory once (the alias is hidden)
    assert page.locator('[data-testid="stSidebarNav"]').get_by_text("Memory", exact=True).count() == 1


def test_learn_plays_without_console_errors_and_lectures(page, server):
    errors, missing = [], []
    # Streamlit's frontend first probes <page>/_stcore/health and host-config on a deep link (404, then the
    # root): its own base-path detection, not ours, so those two 404s are checked apart from the errors
    page.on("response", lambda r: missing.append(r.url.split("/learn/")[-1]) if r.status == 404 else None)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error"
            and not m.text.startswith("Failed to load resource") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    open_page(page, f"{server}/learn?source=config.json")  # no file: the sidebar errs, Learn still teaches
    page.get_by_text("201,326,592 B = 192 MiB").wait_for()
    page.locator('[data-testid="stPlotlyChart"]').first.locator(".main-svg").first.wait_for()
    page.locator(".updatemenu-button").first.click()  # Play
    page.wait_for_timeout(3000)
    assert errors == [], errors[:5]
    assert set(missing) <= {"_stcore/health", "_stcore/host-config"}, missing
    page.get_by_text("Lecture mode").click()
    page.get_by_role("button", name="Next ▶").wait_for()
    assert not page.locator('[data-testid="stSidebar"]').is_visible()
    size = page.locator(".big p").first.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert size >= 20
    page.get_by_role("button", name="Next ▶").click()
    page.get_by_text("The worked example, exactly").wait_for()
    page.wait_for_timeout(500)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "learn-lecture.png"))


def test_changing_an_input_changes_the_numbers_and_the_url(page, server):
    open_page(page, f"{server}/")
    wait_for_metric(page, "KV cache", "1.00 GiB")
    page.locator('[data-testid="stPlotlyChart"] .bars path').first.wait_for()
    bars = "() => [...document.querySelector('[data-testid=\"stPlotlyChart\"]').querySelectorAll('.bars path')]" \
           ".map(p => p.getAttribute('d')).join(' ')"
    before = page.evaluate(bars)
    # drag the batch slider two stops to the right with the keyboard: 1 -> 2 -> 4
    thumb = page.locator('[data-testid="stSidebar"] [data-testid="stSlider"]').filter(
        has_text="Batch (concurrent sequences)").get_by_role("slider")
    thumb.focus()
    thumb.press("ArrowRight")
    thumb.press("ArrowRight")
    wait_for_metric(page, "KV cache", "4.00 GiB")  # 4 x 8,192 tokens x 131,072 B
    page.wait_for_function("() => window.location.search.includes('batch=4')")
    # the breakdown bar redrew: its KV-cache segment is 4x as long
    page.wait_for_function(f"(before) => ({bars})() !== before", arg=before)


def test_precise_values_and_edit_this_model(page, server):
    open_page(page, f"{server}/")
    page.get_by_text("Precise values").click()
    box = page.locator('[data-testid="stTextInput"]').filter(has_text="Batch (concurrent sequences)").locator("input")
    box.fill("3")
    box.press("Enter")
    wait_for_metric(page, "KV cache", "3.00 GiB")
    page.get_by_role("button", name="Edit this model").click()
    page.wait_for_function("() => window.location.search.includes('source=custom')")
    box = page.locator('[data-testid="stTextInput"]').filter(has_text="KV heads").locator("input")
    box.fill("32")  # Llama-3.1-8B with MHA: 4x the cache
    box.press("Enter")
    wait_for_metric(page, "KV cache", "12.00 GiB")


def test_a_shared_link_reproduces_the_scenario(page, server):
    open_page(page, f"{server}/?model=deepseek-v3&batch=2&context=1000&unit=GB")
    wait_for_metric(page, "KV per token", "70,272 B")
    wait_for_metric(page, "KV cache", "140.54 MB")  # 2 x 1,000 x 70,272 B in decimal units
    assert page.locator("h1").inner_text().startswith("DeepSeek-V3")


def test_a_bad_link_falls_back_with_a_notice(page, server):
    open_page(page, f"{server}/?batch=lots")
    page.get_by_text("not valid").first.wait_for()
    wait_for_metric(page, "KV cache", "1.00 GiB")


def test_uploading_a_config(page, server, tmp_path):
    cfg = json.loads((ROOT / "data" / "models" / "qwen3-8b.json").read_text())["config"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    open_page(page, f"{server}/")
    page.locator('[data-testid="stSidebar"]').get_by_text("config.json", exact=True).first.click()
    uploader = page.locator('[data-testid="stSidebar"] input[type="file"]')  # not the page's scenario loader
    uploader.wait_for(state="attached")
    uploader.set_input_files(str(path))
    wait_for_metric(page, "KV per token", "147,456 B")
    # the title is the model's name from its config, not the file's name
    assert page.locator("h1").first.inner_text().startswith(cfg.get("_name_or_path", "qwen3"))


def test_a_model_by_its_hub_id(page, server):
    open_page(page, f"{server}/?source=Hub+id&hub=IrfanUruchi/Llama-3.1-8B-Computer-Networks-LLM")
    page.get_by_text("Llama-3.1-8B-Computer-Networks-LLM: where the memory goes").wait_for()
    page.locator('[data-testid="stSidebar"]').get_by_text("11,188,584,672 B of tensors", exact=False).wait_for()
    wait_for_metric(page, "KV per token", "131,072 B")  # Llama-3.1-8B's shape, from the recorded config.json
    page.get_by_text("The checkpoint on the Hub holds 11,188,584,672 B of tensors", exact=False).wait_for()


# Hostile or unusual links: (query string, what the page must say). "notice": a value was replaced and the
# notice says so; "error": the scenario is refused in an error box; None: it must simply draw.
HOSTILE_LINKS = [
    ("batch=1e309", "notice"), ("tp=inf", "notice"), ("context=nan", "notice"), ("batch=" + "9" * 400, "notice"),
    ("context=1e400", "notice"), ("tp=1e309", "notice"), ("kvdtype=int3&gpu=nvidia-h300", "notice"),
    ("tp=3", "error"), ("pp=33", "error"), ("prefix=5000&context=1000", "error"), ("source=config.json", "error"),
    ("batch=16777216&context=1073741824", None), ("prefix=150000&context=200000", None),
]


def open_any(page, url: str) -> None:
    """Open a page that may refuse its inputs (then it has an error box and no title). A link that is replaced
    by defaults reruns the script, so wait for the sidebar's first slider too (a page without it still fails,
    by timeout, where the test asserts it)."""
    page.goto(url)
    page.wait_for_load_state("networkidle")
    page.locator('[data-testid="stMain"] h1, [data-testid="stMain"] [data-testid="stAlert"]').first.wait_for()
    with contextlib.suppress(sync_api.TimeoutError):  # reported by the caller's assertion, with the page it was on
        page.locator('[data-testid="stSidebar"]').get_by_text("Batch (concurrent sequences)").wait_for(timeout=15_000)
    page.wait_for_timeout(300)


@pytest.mark.parametrize(("query", "expect"), HOSTILE_LINKS)
def test_hostile_links_never_break_a_page(page, server, query, expect):
    for path in PAGES.values():
        open_any(page, f"{server}/{path}?{query}")
        where = f"/{path}?{query[:40]}"
        assert page.locator('[data-testid="stException"]').count() == 0, where
        assert page.locator('[data-testid="stSidebarNav"]').count() == 1, where  # the navigation stays
        assert page.locator('[data-testid="stSidebar"]').get_by_text("Batch (concurrent sequences)").count(), where
        alerts = page.locator('[data-testid="stMain"] [data-testid="stAlert"]').all_inner_texts()
        if expect == "notice":
            assert any("not valid and were replaced by defaults" in a for a in alerts), (where, alerts)
        elif expect == "error":
            assert alerts, where
        assert not any("Traceback" in a or "File \"/" in a for a in alerts), where


def test_names_render_as_plain_text_and_each_tab_names_its_page(page, server, tmp_path):
    """Issue #21, item 5: a config's name is text, not Markdown (bold, links, LaTeX) and cannot reverse the
    heading with a right-to-left override; a browser tab says which page it shows."""
    cfg = json.loads((ROOT / "data" / "models" / "qwen3-8b.json").read_text())["config"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg | {"_name_or_path": "**bold** [x](http://e.com) $x^2$ \u202eevil"}))
    open_page(page, f"{server}/")
    assert page.title() == "Memory · kvdash"
    page.locator('[data-testid="stSidebar"]').get_by_text("config.json", exact=True).first.click()
    page.locator('[data-testid="stSidebar"] input[type="file"]').set_input_files(str(path))
    wait_for_metric(page, "KV per token", "147,456 B")
    heading = page.locator("h1").first
    assert heading.inner_text().replace("\u2060", "") == "**bold** [x](http://e.com) $x^2$ evil: where the memory goes"
    assert heading.locator("strong, .katex, a[href*=\"e.com\"]").count() == 0  # (its own anchor link stays)
    open_page(page, f"{server}/speed")
    assert page.title() == "Speed · kvdash"


def test_kv_heads_slider_offers_only_divisors_of_the_query_heads(page, server):
    """Issue #21, item 2: a one-stop miss on the KV-heads slider cannot blank the page; a link with an
    invalid count moves to the divisor below and says so."""
    open_page(page, f"{server}/?source=custom&c_heads=32&c_kv=31")
    side = page.locator('[data-testid="stSidebar"]')
    side.get_by_text("31 KV heads do not divide 32 query heads: using 16.").wait_for()
    assert page.locator('[data-testid="stMain"] [data-testid="stAlert"]').filter(has_text="multiple").count() == 0
    wait_for_metric(page, "KV per token", f"{32 * 2 * 16 * 128 * 2:,} B")
    slider = side.locator('[data-testid="stSlider"]').filter(has_text="KV heads")
    slider.get_by_role("slider").focus()
    page.keyboard.press("ArrowRight")  # one stop up: 16 -> 32, never 17
    wait_for_metric(page, "KV per token", f"{32 * 2 * 32 * 128 * 2:,} B")


def test_every_page_asks_the_sidebars_question(page, server):
    """Issue #21, item 1: Speed serves the sidebar's batch, Serving capacity sizes for the sidebar's sequence
    length, Compare's first scenario is the sidebar's model whatever its source."""
    open_page(page, f"{server}/speed?batch=16")
    page.get_by_text("the sidebar's batch; the charts sweep").wait_for()
    page.locator('[data-testid="stMetric"]').filter(has_text="TTFT at 16 in flight").wait_for()
    open_page(page, f"{server}/serving?context=4096&new=512")
    page.get_by_text("--max-model-len 4608", exact=False).wait_for()
    open_page(page, f"{server}/compare?source=custom&c_name=Tiny&c_layers=10")
    table = page.locator('[data-testid="stDataFrame"]').first
    table.wait_for()
    page.get_by_text("Scenario A is the sidebar's: Tiny", exact=False).wait_for()


def test_launch_commands_carry_the_sized_formats(page, server):
    """Issue #21, item 4: the SGLang command quantizes 16-bit weights to fp8 and keeps an fp8 cache as sized;
    a max length past the trained context adds the override and says so."""
    open_page(page, f"{server}/serving?runtime=SGLang&kvdtype=fp8&wdtype=fp8&serve_len=262144")
    code = page.locator('[data-testid="stCode"]').filter(has_text="sglang.launch_server").first
    code.wait_for()
    text = code.inner_text()
    assert "--quantization fp8" in text and "--kv-cache-dtype fp8_e4m3" in text
    assert text.startswith("SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1 python -m sglang.launch_server")
    page.get_by_text("262,144 tokens exceed the 131,072 the model was trained for", exact=False).wait_for()


def test_typed_numbers_never_fail_silently(page, server):
    """Issue #21, item 5: with "Precise values", 1e5 is 100,000 tokens (not 1), and 2.5 sequences is refused in
    an error box naming the input, instead of being truncated or left red while the page keeps the old value."""
    open_page(page, f"{server}/")
    side = page.locator('[data-testid="stSidebar"]')
    side.get_by_text("Precise values").click()
    context = side.locator('[data-testid="stTextInput"]').filter(has_text="Prompt tokens per sequence").locator("input")
    context.wait_for()  # the box replaces the slider once the toggle's rerun is drawn
    context.fill("1e5")
    context.press("Enter")
    wait_for_metric(page, "KV cache", "12.21 GiB")  # 100,000 x 131,072 B
    batch = side.locator('[data-testid="stTextInput"]').filter(has_text="Batch (concurrent sequences)").locator("input")
    batch.fill("2.5")
    batch.press("Enter")
    page.locator('[data-testid="stMain"] [data-testid="stAlert"]').filter(
        has_text="'2.5' is not a whole number").wait_for()
    assert page.locator('[data-testid="stMain"] [data-testid="stMetric"]').count() == 0


# Every text of the main area with text of its own (DOM and chart SVG), and the lowest bottom edge of its blocks.
SLIDE_TEXT = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
  const small = [];
  for (const e of main.querySelectorAll('*')) {
    const r = e.getBoundingClientRect();
    if (!r.width || !r.height || ![...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
    const px = parseFloat(getComputedStyle(e).fontSize);
    if (px < 22) small.push(`${e.tagName} ${px}px '${e.textContent.trim().slice(0, 30)}'`);
  }
  let bottom = 0;
  for (const b of main.querySelectorAll('[data-testid="stVerticalBlock"] > *')) {
    const r = b.getBoundingClientRect();
    if (r.height) bottom = Math.max(bottom, r.bottom);
  }
  return {small, bottom, svgText: main.querySelectorAll('svg text').length};
}"""


def test_lecture_slides_hold_up_on_a_projector(browser, server, tmp_path):
    """Issue #21, item 2: at 1280 x 720, in lecture mode, every slide fits without scrolling and every text,
    chart text included, is 22 px or more, measured in the rendered DOM and SVG; the one-slide summary's
    lengths are categories; its download is the same chart at three times 1280 x 720."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 720}, accept_downloads=True)
    page = ctx.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{server}/learn?lecture=true")  # no h1 in lecture mode: each slide has its header
    for i in range(5):
        page.get_by_text(f"slide {i + 1} of 5").wait_for()
        if i in (2, 4):  # a chart: wait until plotly has drawn its text
            page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for()
            page.wait_for_timeout(1500)
        m = page.evaluate(SLIDE_TEXT)
        assert m["small"] == [], (i + 1, m["small"][:5])
        assert m["bottom"] <= 720, (i + 1, m["bottom"])
        if i in (2, 4):
            assert m["svgText"] > 10
        if i < 4:
            page.get_by_role("button", name="Next ▶").click()
    ticks = page.locator('[data-testid="stPlotlyChart"] .xtick text').all_text_contents()
    assert ticks == ["512", "2,048", "8,192", "32,768", "131,072"]  # categories, evenly spaced
    page.get_by_text("png", exact=True).click()
    page.wait_for_timeout(1000)
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    chart.hover()
    with page.expect_download() as dl:
        chart.locator('.modebar-btn[data-title^="Download plot"]').click()
    path = tmp_path / "slide.png"
    dl.value.save_as(path)
    width, height = int.from_bytes(path.read_bytes()[16:20], "big"), int.from_bytes(path.read_bytes()[20:24], "big")
    assert (width, height) == (3840, 2160)
    page.screenshot(path=str(SHOTS / "learn-lecture-summary.png"))
    ctx.close()


@pytest.mark.parametrize(("hub_id", "says"), [
    # a typo: the Hub answers 404 RepoNotFound to a caller with a token (401 without): "check the id", not "gated"
    ("meta-llama/Llama-3.1-8b-typo", "no model 'meta-llama/Llama-3.1-8b-typo' on the Hugging Face Hub: check the id"),
    ("google/gated-model", "is gated: accept its licence"),  # 403 GatedRepo: the token has no access
    ("IrfanUruchi/Llama-3.1-8B-Computer-Networks-LLM@v9", "has no revision 'v9'"),  # 404 RevisionNotFound
])
def test_hub_answers_name_their_cause(page, server, hub_id, says):
    """Issue #21, item 3: each refusal of the Hub (through huggingface_hub's error classes) says what it is."""
    open_any(page, f"{server}/?source=Hub+id&hub={hub_id}")
    page.locator('[data-testid="stAlert"]').filter(has_text=says).first.wait_for()


def test_a_gated_hub_model_reads_slowly_with_progress_and_the_token_stays_on_the_hub(page, server, fake_hub):
    """Issue #21, item 3: a Hub URL of a gated model the server's token may read, on a slow Hub: the sidebar
    says what it is reading while the shard headers arrive (in parallel), and the token goes to the Hub but
    never to the storage host its large files redirect to, checked on the wire."""
    fake_hub.delay = 1.0
    fake_hub.seen.clear()
    try:
        page.goto(f"{server}/?source=Hub+id&hub=https://huggingface.co/meta-llama/Llama-3.1-8B/tree/main")
        page.locator('[data-testid="stSidebar"]').get_by_text("shard headers of meta-llama/Llama-3.1-8B",
                                                               exact=False).first.wait_for(timeout=60_000)
        wait_for_metric(page, "KV per token", "131,072 B")
    finally:
        fake_hub.delay = 0.0
    tokens = {(origin, auth) for origin, _, path, auth in fake_hub.seen if "Llama-3.1-8B/" in path}
    assert ("hub", f"Bearer {HF_TOKEN}") in tokens and ("storage", None) in tokens
    assert not any(origin == "storage" and auth for origin, auth in tokens)


def test_charts_and_exports_say_what_they_show(page, server, tmp_path):
    """Issue #21, item 6: Gemma-2's alternating sliding and full layers draw as equal cells (the issue saw gpt-oss's
    full layers drawn over its sliding ones; each bar now has its own width, so plotly cannot size a kind's bars
    by the gap between its own layers); log axes label powers of ten
    only; the Scaling charts mark the sidebar's scenario and name the tensor parallelism they compute at;
    latency reads in ms and s; a CSV export is named after its scenario and carries it."""
    open_page(page, f"{server}/?model=gemma-2-9b")
    page.locator('[data-testid="stPlotlyChart"] .bars path').first.wait_for()
    page.wait_for_timeout(1000)
    widths = page.evaluate("""() => {
        const strip = [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
            .find(c => c.textContent.includes('layers by kind'));
        return [...strip.querySelectorAll('.bars path')].map(p => p.getBoundingClientRect().width); }""")
    assert len(widths) == 42 and max(widths) - min(widths) < 1  # 21 sliding and 21 full cells, all one width
    with page.expect_download() as dl:
        page.get_by_role("button", name="Breakdown as CSV").click()
    assert dl.value.suggested_filename == "kvdash-Gemma-2-9B-b1-t8192-bf16-nvidia-h100-sxm5.csv"
    path = tmp_path / "breakdown.csv"
    dl.value.save_as(path)
    head = path.read_text().splitlines()
    assert head[0].startswith("# model: ") and "# batch: 1" in head and "# prompt tokens: 8192" in head
    # the weight table is computed when its expander opens (issue #21, item 7: a closed one costs nothing)
    weights = page.locator('[data-testid="stExpander"]').filter(has_text="Weight table")
    assert weights.locator('[data-testid="stDataFrame"]').count() == 0
    weights.get_by_text("Weight table").click()
    weights.locator('[data-testid="stDataFrame"]').wait_for()
    open_page(page, f"{server}/scaling?tp=2&batch=4&context=4096")
    page.get_by_text("What fits per H100 SXM5 80GB at tensor parallel 2 (2 GPUs)").wait_for()
    page.locator('[data-testid="stPlotlyChart"] .xtick text').first.wait_for()
    page.wait_for_timeout(1000)
    ticks = page.locator('[data-testid="stPlotlyChart"] .xtick text').all_text_contents()
    assert ticks and all(t.replace("\u2212", "") in ("1", "10", "100", "1k", "10k", "100k", "1M") for t in ticks), ticks
    assert page.locator('[data-testid="stPlotlyChart"] .legendtext').filter(
        has_text="the sidebar's scenario").count() >= 2
    open_page(page, f"{server}/speed")
    page.locator('[data-testid="stPlotlyChart"] .ytick text').first.wait_for()
    page.wait_for_timeout(1000)
    first = page.locator('[data-testid="stPlotlyChart"]').first
    ticks = first.locator(".ytick text").all_text_contents()
    assert ticks and all(t.endswith((" ms", " s")) for t in ticks), ticks


def test_a_saved_scenario_of_an_uploaded_config_loads_back(page, server, tmp_path):
    """Issue #21, item 6: the scenario JSON of an uploaded config.json carries the config, so loading it back
    brings the model back, not an error."""
    cfg = json.loads((ROOT / "data" / "models" / "qwen3-8b.json").read_text())["config"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    open_page(page, f"{server}/")
    page.locator('[data-testid="stSidebar"]').get_by_text("config.json", exact=True).first.click()
    page.locator('[data-testid="stSidebar"] input[type="file"]').set_input_files(str(path))
    wait_for_metric(page, "KV per token", "147,456 B")
    with page.expect_download() as dl:
        page.get_by_role("button", name="Scenario as JSON").click()
    saved = tmp_path / "scenario.json"
    dl.value.save_as(saved)
    assert json.loads(saved.read_text())["config"]["num_hidden_layers"] == 36
    open_page(page, f"{server}/?model=llama-3.1-8b")
    wait_for_metric(page, "KV per token", "131,072 B")
    page.locator('[data-testid="stMain"] input[type="file"]').set_input_files(str(saved))
    wait_for_metric(page, "KV per token", "147,456 B")


def test_a_touch_screen_shows_no_chart_toolbar_over_the_titles(browser, server):
    """Issue #21, item 6: on a phone plotly's toolbar would stay shown over every chart's title."""
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    phone = ctx.new_page()
    phone.set_default_timeout(30_000)
    try:
        open_page(phone, f"{server}/")
        phone.locator(".modebar-container").first.wait_for(state="attached")
        shown = phone.evaluate("""() => [...document.querySelectorAll('.modebar-container')]
            .map(m => getComputedStyle(m).display)""")
        assert shown and set(shown) == {"none"}
    finally:
        ctx.close()


def test_the_plan_page_serves_a_rate_and_says_when_it_cannot(page, server):
    """Issue #22: the Plan page, bound to the URL, lists the options for a rate with the command for the one
    with the fewest GPUs; targets nothing meets are refused with each configuration's reason."""
    open_page(page, f"{server}/plan?context=1024&new=256&plan_rate=10.0&plan_ttft=1000&plan_tpot=50"
                    "&plan_gpus=nvidia-h100-sxm5")
    wait_for_metric(page, "First option", "1 GPUs")
    page.locator('[data-testid="stCode"]').filter(has_text="--tensor").or_(
        page.locator('[data-testid="stCode"]').filter(has_text="--tp")).first.wait_for()
    # the user's price: one H100 at $2 an hour serves 10 x 256 x 3,600 = 9,216,000 output tokens: $0.217 a million
    open_page(page, f"{server}/plan?context=1024&new=256&plan_rate=10.0&plan_ttft=1000&plan_tpot=50"
                    "&plan_gpus=nvidia-h100-sxm5&plan_prices=nvidia-h100-sxm5%3D2")
    wait_for_metric(page, "Cost per M output tokens", "$0.217")
    # the link's GPU list applies (only the H100 is priced), and stays in the address bar
    page.locator('[data-testid="stCaptionContainer"]').filter(
        has_text="Prices per GPU-hour: H100 SXM5 80GB $2.00 (yours). Cost").first.wait_for()
    assert "plan_gpus=nvidia-h100-sxm5" in page.url
    # disaggregated pools only, from the link: the prefill, decode and router commands
    open_page(page, f"{server}/plan?context=4096&new=256&plan_rate=20.0&plan_ttft=1000&plan_tpot=50"
                    "&plan_gpus=nvidia-h100-sxm5&plan_mode=disaggregated")
    page.get_by_text("The front end that sends each request to a prefill worker").first.wait_for()
    assert "plan_mode=disaggregated" in page.url
    open_page(page, f"{server}/plan?context=1024&new=256&plan_rate=1000.0&plan_ttft=100&plan_tpot=5"
                    "&plan_gpus=nvidia-l40s")
    page.locator('[data-testid="stAlert"]').filter(has_text="No configuration of the").first.wait_for()


@pytest.fixture(scope="module")
def class_server(tmp_path_factory):
    """The class server (deploy/class_server.py): two dashboard processes behind nginx."""
    sys.path.insert(0, str(ROOT / "deploy"))
    from class_server import ClassServer, nginx_binary

    if nginx_binary() is None:
        pytest.skip("nginx is not installed: `apt-get install nginx` (.ci/run installs it)")
    env = dict(os.environ, KVDASH_DATA_DIR=str(tmp_path_factory.mktemp("kvdash-class-data")))
    server = ClassServer(2, "127.0.0.1", _free_port(), tmp_path_factory.mktemp("class-server"), env=env,
                         worker_ports=[_free_port(), _free_port()]).start()
    yield server
    server.stop()


def test_a_class_server_keeps_each_browser_on_its_own_process(browser, class_server, tmp_path):
    """Three students each upload a config.json through nginx: the upload reaches the process that holds the
    session only if every request of a browser goes to the same process, and nginx's log shows it did."""
    cfg = json.loads((ROOT / "data" / "models" / "qwen3-8b.json").read_text())["config"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    for _ in range(3):
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        pg = ctx.new_page()
        pg.set_default_timeout(30_000)
        open_page(pg, f"{class_server.url}/")
        pg.locator('[data-testid="stSidebar"]').get_by_text("config.json", exact=True).first.click()
        uploader = pg.locator('[data-testid="stSidebar"] input[type="file"]')
        uploader.wait_for(state="attached")
        uploader.set_input_files(str(path))
        wait_for_metric(pg, "KV per token", "147,456 B")
        assert any(c["name"] == "kvdash_route" for c in ctx.cookies())
        ctx.close()
    for _ in range(30):  # new visitors (no cookie yet) are spread over the processes
        urllib.request.urlopen(f"{class_server.url}/_stcore/health", timeout=10).read()
    time.sleep(0.5)  # nginx writes its log line after the answer
    routes: dict[str, set] = {}
    for line in (class_server.run_dir / "logs" / "access.log").read_text().splitlines():
        route, upstream = line.split()[:2]
        routes.setdefault(route, set()).add(upstream)
    assert sum(1 for ups in routes.values() if len(ups) == 1) == len(routes), routes  # each route: one process
    browsers = [ups for ups in routes.values() if len(ups) == 1 and "-" not in ups]
    assert len(browsers) >= 33
    assert len({u for ups in routes.values() for u in ups}) == 2  # both processes serve
