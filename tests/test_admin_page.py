"""The admin page (`GET /` on the admin endpoint) in a real headless browser: Debian's chromium driven by
its chromedriver through selenium (`make browser` installs them; without them this skips). The graph shows
the configured pipeline, a trace sent by the OpenTelemetry SDK appears in the list, and a click opens its
waterfall with every span, with one process and with two workers. The screenshot is kept in the test's tmp dir, and in
docs/screenshots/admin-page.png with UPDATE_SCREENSHOTS=1."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from tests import two_workers
from tests.harness import REPO, Ports, Sink, basic_config, free_port, running

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                reason="chromium and chromium-driver are not installed (make browser, needs apt)")

SCREENSHOT = REPO / "docs" / "screenshots" / "admin-page.png"


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    assert CHROMIUM is not None and CHROMEDRIVER is not None
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,900"):
        options.add_argument(arg)
    # The driver named here: selenium never looks for (or downloads) one.
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


# The page redraws its lists every second: a handle found one moment may be stale the next, so waits
# retry, and clicks and reads run in the page, each in one script.
_STALE = (StaleElementReferenceException,)


def _click(browser: WebDriver, css: str, index: int = 0) -> None:
    browser.execute_script("document.querySelectorAll(arguments[0])[arguments[1]].click()", css, index)


def _read(browser: WebDriver, css: str, what: str) -> list[Any]:
    """`what` (a JS expression of `e`) for each element matching `css`, read at one moment."""
    found: list[Any] = browser.execute_script(
        f"return [...document.querySelectorAll(arguments[0])].map((e) => {what})", css)
    return found


def _send_trace(grpc_port: int) -> str:
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"127.0.0.1:{grpc_port}",
                                                                     insecure=True)))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("GET /cart", attributes={"http.route": "/cart"}) as root:
        with tracer.start_as_current_span("load cart"), tracer.start_as_current_span("SELECT carts") as leaf:
            leaf.add_event("rows", {"count": 3})
            leaf.set_status(Status(StatusCode.ERROR, "slow query"))
        trace_id = format(root.get_span_context().trace_id, "032x")
    provider.shutdown()
    return trace_id


def test_the_page_shows_the_graph_and_a_trace_waterfall(sink: Sink, browser: WebDriver, tmp_path: Path) -> None:
    ports, admin = Ports.free(), free_port()
    cfg = basic_config(ports, f'  otlp:\n    endpoint: "127.0.0.1:{sink.grpc_port}"\n    tls: {{insecure: true}}\n',
                       "[otlp]") + f'  admin: {{endpoint: "127.0.0.1:{admin}"}}\n'
    with running(cfg, ports):
        browser.get(f"http://127.0.0.1:{admin}/")
        wait = WebDriverWait(browser, 20, ignored_exceptions=_STALE)
        # The configured pipeline: traces = otlp receiver -> batch -> otlp exporter.
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '.node[data-key="exporter:otlp"]'))
        keys = {e.get_attribute("data-key") for e in browser.find_elements(By.CSS_SELECTOR, ".node")}
        assert keys == {"pipeline:traces", "receiver:otlp", "processor:batch", "exporter:otlp"}
        # The page watches the receiver's inputs once it has asked for its traces.
        wait.until(lambda d: d.find_element(By.ID, "component").get_attribute("value") == "receiver:otlp"
                   and d.find_elements(By.CSS_SELECTOR, "#traces li"))
        trace_id = _send_trace(ports.grpc)
        row = f'#traces li.trace[data-trace-id="{trace_id}"]'
        wait.until(lambda d: "3 spans" in "".join(e.text for e in d.find_elements(By.CSS_SELECTOR, row)))
        _click(browser, row)
        names = ["GET /cart", "load cart", "SELECT carts"]
        wait.until(lambda d: [e.text for e in d.find_elements(By.CSS_SELECTOR, "#waterfall .span-name")] == names)
        # Nested: each child is indented further than its parent.
        pads = _read(browser, "#waterfall .label", "getComputedStyle(e).paddingLeft")
        assert pads == sorted(pads, key=lambda p: float(p.removesuffix("px"))) and len(set(pads)) == 3
        _click(browser, "#waterfall .span-row", 2)
        wait.until(lambda d: d.find_element(By.ID, "detail").is_displayed()
                   and "slow query" in d.find_element(By.ID, "detail").text)
        detail = browser.find_element(By.ID, "detail").text
        assert "ERROR" in detail and "rows" in detail and '"count":3' in detail
        # A rate computed from two reads of the stats.
        wait.until(lambda d: "in \u2013" not in d.find_element(By.CSS_SELECTOR, '.node[data-key="receiver:otlp"]').text)
        assert browser.save_screenshot(str(tmp_path / "admin-page.png"))
        if os.environ.get("UPDATE_SCREENSHOTS"):  # the committed copy changes only when asked to
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tmp_path / "admin-page.png", SCREENSHOT)


def test_with_two_workers_a_trace_over_both_shows_every_span(sink: Sink, browser: WebDriver) -> None:
    """A trace whose spans went over two connections, each reaching another worker: the supervisor's
    /api/v1/traces merges them, and the waterfall shows them all."""
    ports, admin = Ports.free(), free_port()
    with running(two_workers.config(ports, sink, f"127.0.0.1:{admin}"), ports) as gw:
        providers, _ = two_workers.providers_by_worker(gw)
        browser.get(f"http://127.0.0.1:{admin}/")
        wait = WebDriverWait(browser, 20, ignored_exceptions=_STALE)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '.node[data-key="exporter:otlp"]'))
        keys = {e.get_attribute("data-key") for e in browser.find_elements(By.CSS_SELECTOR, ".node")}
        assert keys == {"pipeline:traces", "receiver:otlp", "processor:filter", "exporter:otlp"}
        wait.until(lambda d: d.find_element(By.ID, "component").get_attribute("value") == "receiver:otlp"
                   and d.find_elements(By.CSS_SELECTOR, "#traces li"))
        one, two = (providers[i].get_tracer("t") for i in (1, 2))
        with one.start_as_current_span("GET /cart") as root:
            with two.start_as_current_span("load cart"), one.start_as_current_span("SELECT carts"):
                pass
            trace_id = format(root.get_span_context().trace_id, "032x")
        for p in providers.values():
            p.shutdown()
        row = f'#traces li.trace[data-trace-id="{trace_id}"]'
        wait.until(lambda d: "3 spans" in "".join(e.text for e in d.find_elements(By.CSS_SELECTOR, row)))
        _click(browser, row)
        wait.until(lambda d: [e.text for e in d.find_elements(By.CSS_SELECTOR, "#waterfall .span-name")]
                   == ["GET /cart", "load cart", "SELECT carts"])
        # Both workers took part: each has a span of the trace at its own admin server.
        seen = {index: {s["name"] for t in two_workers.get(port, "/api/v1/traces?component=receiver:otlp")["traces"]
                        if t["trace_id"] == trace_id for s in t["spans"]}
                for index, (_, port) in two_workers.private_ports(gw).items()}
        assert seen == {1: {"GET /cart", "SELECT carts"}, 2: {"load cart"}}


def test_before_after_shows_changed_attributes_and_the_filtered_span(sink: Sink, browser: WebDriver,
                                                                    tmp_path: Path) -> None:
    """One pipeline: `attributes` (update, insert and delete a key), then `filter` (drops "healthcheck"). In
    before/after mode the attributes processor's spans show their changes and the filter's its dropped span."""
    ports, admin = Ports.free(), free_port()
    processors = """attributes:
    actions:
      - {key: env, value: prod, action: update}
      - {key: team, value: payments, action: insert}
      - {key: secret, action: delete}
  filter: {traces: {span: ['name == "healthcheck"']}}"""
    cfg = basic_config(ports, f'  otlp:\n    endpoint: "127.0.0.1:{sink.grpc_port}"\n    tls: {{insecure: true}}\n',
                       "[otlp]", processors=processors, pipeline_processors="[attributes, filter]")
    with running(cfg + f'  admin: {{endpoint: "127.0.0.1:{admin}"}}\n', ports):
        browser.get(f"http://127.0.0.1:{admin}/")
        wait = WebDriverWait(browser, 30, ignored_exceptions=_STALE)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '.node[data-key="processor:filter"]'))
        # The processors are drawn as the chain they are: attributes, then filter to its right.
        x = {key: browser.find_element(By.CSS_SELECTOR, f'.node[data-key="{key}"]').location["x"]
             for key in ("receiver:otlp", "processor:attributes", "processor:filter", "exporter:otlp")}
        assert x["receiver:otlp"] < x["processor:attributes"] < x["processor:filter"] < x["exporter:otlp"], x

        def watch_before_after(key: str) -> None:
            browser.find_element(By.CSS_SELECTOR, f'.node[data-key="{key}"]').click()
            wait.until(lambda d: d.find_element(By.ID, "diff-label").is_displayed())
            if not browser.find_element(By.ID, "diff").is_selected():
                browser.find_element(By.ID, "diff").click()
            # The view is open once the list answered from /api/v1/diff for this processor.
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#traces li")
                       and d.find_element(By.ID, "direction").get_attribute("disabled"))

        # Both views open before the trace is sent (each sees what crosses it from then on).
        watch_before_after("processor:filter")
        watch_before_after("processor:attributes")
        provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"127.0.0.1:{ports.grpc}",
                                                                         insecure=True)))
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span("GET /cart", attributes={"env": "dev", "secret": "s3"}) as root:
            with tracer.start_as_current_span("healthcheck"), tracer.start_as_current_span("SELECT carts"):
                pass
            trace_id = format(root.get_span_context().trace_id, "032x")
        provider.shutdown()
        row = f'#traces li.trace[data-trace-id="{trace_id}"]'
        wait.until(lambda d: "3 kept" in "".join(e.text for e in d.find_elements(By.CSS_SELECTOR, row)))
        _click(browser, row)
        root_row = '#waterfall .span-row[data-state="kept"] .changes'
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, root_row))
        changes = _read(browser, root_row, "e.innerText")[0]
        assert "env: dev → prod" in changes and "+ team = payments" in changes and "\u2212 secret = s3" in changes
        assert _read(browser, "#waterfall .changes .rem", "getComputedStyle(e).textDecorationLine") == ["line-through"]
        # The filter: the healthcheck span dropped (once its grace is over), the others kept.
        watch_before_after("processor:filter")
        wait.until(lambda d: "1 dropped" in "".join(e.text for e in d.find_elements(By.CSS_SELECTOR, row)))
        _click(browser, row)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#waterfall .span-row")) == 3)
        states = dict(_read(browser, "#waterfall .span-row",
                            "[e.querySelector('.span-name').innerText, e.dataset.state]"))
        assert states == {"GET /cart": "kept", "healthcheck": "dropped", "SELECT carts": "kept"}
        dropped = '#waterfall .span-row[data-state="dropped"]'
        text = _read(browser, dropped, "e.innerText")[0]
        assert "dropped: filtered" in text and "not seen at the output after 5s" in text
        assert _read(browser, dropped + " .span-name", "getComputedStyle(e).textDecorationLine") == ["line-through"]
        assert browser.save_screenshot(str(tmp_path / "admin-before-after.png"))
        if os.environ.get("UPDATE_SCREENSHOTS"):
            shutil.copyfile(tmp_path / "admin-before-after.png", SCREENSHOT.with_name("admin-before-after.png"))


def test_behind_a_bearer_token_the_page_asks_for_it_once_and_sends_it(sink: Sink, browser: WebDriver) -> None:
    """The 401 of `/` carries the page, which asks for the token, keeps it for the tab (sessionStorage) and
    sends it with its requests: the graph shows, and again after a reload of the page without asking."""
    ports, admin, token = Ports.free(), free_port(), "page-token-5c1e"
    cfg = basic_config(ports, f'  otlp:\n    endpoint: "127.0.0.1:{sink.grpc_port}"\n    tls: {{insecure: true}}\n',
                       "[otlp]", extra=f"  bearertokenauth: {{token: {token}}}\n")
    cfg = cfg.replace("extensions: [health_check]", "extensions: [health_check, bearertokenauth]")
    cfg += f'  admin: {{endpoint: "127.0.0.1:{admin}", auth: {{authenticator: bearertokenauth}}}}\n'
    with running(cfg, ports):
        browser.get(f"http://127.0.0.1:{admin}/")
        wait = WebDriverWait(browser, 20)
        wait.until(lambda d: d.find_elements(By.ID, "token"))
        assert len(browser.find_elements(By.ID, "token-form")) == 1  # once, though every poll got a 401
        assert not browser.find_elements(By.CSS_SELECTOR, ".node")
        browser.find_element(By.ID, "token").send_keys(token)
        browser.find_element(By.CSS_SELECTOR, "#token-form button").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '.node[data-key="exporter:otlp"]'))
        assert not browser.find_elements(By.ID, "token-form")
        assert browser.execute_script('return sessionStorage.getItem("otelgw-admin-token")') == token
        browser.refresh()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '.node[data-key="exporter:otlp"]'))
        assert not browser.find_elements(By.ID, "token-form")
