"""The dashboard in a real Chromium (Debian's, driven by playwright) over a real gateway
process, its fake upstream and the official OpenAI SDK: it loads without a console error,
signs in with the admin key, shows the request just sent, filters traces, opens one trace's
decision path, shows a savings figure that matches the traces, and shows the latest
evaluation report. Screenshots go to tests/artifacts/ (kept by CI)."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent.parent / "artifacts"
ADMIN_KEY = "admin-key-for-the-browser-test"
KEYS = {"alpha": "sk-alpha-browser-test", "beta": "sk-beta-browser-test"}
PRICES = {"small": (0.1, 0.2), "big": (3.0, 15.0), "mid": (1.0, 2.0)}
WAIT_MS = 15_000

sync_api = pytest.importorskip(
    "playwright.sync_api", reason='the browser tests need playwright: pip install -e ".[dev]"'
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None,
        reason=f"the browser tests need Debian's chromium at {CHROMIUM}: apt-get install chromium",
    ),
]


def gateway_config(upstream: str, reports: Path, artifact: Path) -> dict[str, Any]:
    return {
        "server": {
            "admin_key_env": "CROSSROADS_TEST_ADMIN_KEY",
            "api_keys": [
                {"name": "alpha", "key_env": "CROSSROADS_TEST_KEY_ALPHA", "team": "search"},
                {"name": "beta", "key_env": "CROSSROADS_TEST_KEY_BETA"},
            ],
        },
        "teams": [{"name": "search"}],
        "store": {"flush_interval_ms": 20},
        "upstreams": [{"name": "fake", "base_url": upstream, "timeouts": {"total": 10}}],
        "models": [
            {
                "name": name,
                "upstream": "fake",
                "upstream_model": "s" if name == "small" else "b",
                "price": {"input": i, "output": o},
            }
            for name, (i, o) in PRICES.items()
        ],
        "signals": [{"kind": "keyword", "name": "code", "keywords": ["python", "rust"]}],
        "decisions": [
            {
                "name": "coding",
                "when": "keyword:code",
                "models": ["mid", "big"],
                "selection": {
                    "method": "router",
                    "router": str(artifact),
                    "model_map": {"model-0": "mid", "model-1": "big"},
                },
            }
        ],
        "default": {"models": ["small", "mid"]},
        "ui": {"reference_model": "big", "eval_reports": str(reports)},
    }


def write_report(root: Path) -> tuple[Path, Path]:
    """A real `crossroads eval` report (two routers on a small synthetic dataset) and an
    artifact of one of them for the gateway to serve."""
    pytest.importorskip("sklearn", reason="the report needs the [ml] extra")
    import pandas as pd

    from crossroads.eval.cli import fit_artifact
    from crossroads.eval.report import write_report as write
    from crossroads.eval.runner import evaluate
    from crossroads.eval.synthetic import write_dataset

    data = write_dataset(root / "data" / "syn", n=300)
    frame = pd.read_parquet(data / "routing.parquet")
    frame["prompt"] = ""  # task one-hot features: no embedder needed
    frame.to_parquet(data / "routing.parquet")
    result = evaluate(data, ["mean", "cluster"], seed=0, n_boot=10, tune=False)
    # The prompt-free baseline is one the gateway can serve without an embedder.
    artifact = fit_artifact(data, "mean", root / "mean.joblib")
    return write([result], root / "reports" / "run-1"), artifact


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("dashboard")
    report, artifact = write_report(tmp)
    env = {
        "CROSSROADS_TEST_ADMIN_KEY": ADMIN_KEY,
        "CROSSROADS_TEST_KEY_ALPHA": KEYS["alpha"],
        "CROSSROADS_TEST_KEY_BETA": KEYS["beta"],
    }
    mp = pytest.MonkeyPatch()
    for name, value in env.items():
        mp.setenv(name, value)
    try:
        with (
            FakeUpstream(models=["s", "b"], chunks=3) as upstream,
            GatewayProcess(gateway_config(upstream.base_url, tmp / "reports", artifact), tmp) as gw,
        ):
            sent = send_traffic(gw.base_url)
            traces = wait_for_traces(gw.url, len(sent))
            yield {"gw": gw, "sent": sent, "traces": traces, "report": report}
    finally:
        mp.undo()


# Routed requests of both decisions, a stream, a model named outright, one failure.
TRAFFIC = [
    ("alpha", "auto", "hello there", False),
    ("alpha", "auto", "write python to sort a list", False),
    ("alpha", "auto", "what is rust good at", True),
    ("beta", "small", "name three colours", False),
    ("alpha", "nope", "this model does not exist", False),
    ("beta", "auto", "a short poem about roads", False),
]


def send_traffic(
    base_url: str, plan: list[tuple[str, str, str, bool]] = TRAFFIC
) -> list[dict[str, Any]]:
    """Send ``plan`` (key, model, text, stream) through the official SDK."""
    import openai

    sent = []
    for key, model, text, stream in plan:
        client = openai.OpenAI(base_url=base_url, api_key=KEYS[key], max_retries=0)
        chat = client.chat.completions.with_raw_response
        kwargs: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": text}]}
        try:
            if stream:
                raw = chat.create(**kwargs, stream=True, stream_options={"include_usage": True})
                for _ in raw.parse():
                    pass
            else:
                raw = chat.create(**kwargs, max_tokens=20)
            headers = raw.headers
        except openai.NotFoundError as exc:
            headers = exc.response.headers
        sent.append({"key": key, "trace_id": headers["x-crossroads-trace-id"], "text": text})
    return sent


def admin(url: str, path: str, **params: Any) -> Any:
    answer = httpx.get(
        f"{url}/v1/crossroads/admin/{path}",
        params=params,
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    )
    answer.raise_for_status()
    return answer.json()


def wait_for_traces(url: str, n: int) -> list[dict[str, Any]]:
    """Every trace, whole, once the store has written all ``n`` (bounded wait)."""
    deadline = time.monotonic() + 20
    while True:
        rows = admin(url, "traces", limit=200)["data"]
        if len(rows) >= n or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(rows) == n
    return [admin(url, f"traces/{r['trace_id']}") for r in rows]


def expected_savings(traces: list[dict[str, Any]]) -> float:
    """Worked out here from the traces alone: each answered request's usage at the dearest
    price of its decision's candidates, less what it cost."""
    total = 0.0
    for t in traces:
        if not t.get("usage"):
            continue
        prompt, completion = t["usage"]["prompt_tokens"], t["usage"]["completion_tokens"]
        dearest = max(
            (PRICES[c["model"]][0] * prompt + PRICES[c["model"]][1] * completion) / 1e6
            for c in t["route"]["candidates"]
        )
        total += dearest - t["cost"]
    return total


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        # Root (CI) cannot use Chromium's sandbox.
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.problems = problems
    yield page
    context.close()


def sign_in(page: Any, url: str) -> None:
    page.goto(url + "/ui")
    page.locator("#key").fill(ADMIN_KEY)
    page.locator("#login-form button").click()
    sync_api.expect(page.locator("#nav")).to_be_visible()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_a_wrong_key_is_refused_and_the_key_never_reaches_a_url(
    served: dict[str, Any], page: Any
) -> None:
    url = served["gw"].url
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(url + "/ui")
    sync_api.expect(page.locator("#login")).to_be_visible()
    page.locator("#key").fill("not-the-key")
    page.locator("#login-form button").click()
    sync_api.expect(page.locator("#login-error")).to_contain_text("refused")
    assert page.evaluate("sessionStorage.length") == 0
    sign_in(page, url)
    assert page.evaluate("sessionStorage.length") == 1
    assert not [u for u in requests if ADMIN_KEY in u or "not-the-key" in u]
    # The 401 of the wrong key is the only console error (the browser reports it).
    assert [p for p in page.problems if "401" not in p] == []


def test_overview_shows_the_traffic_and_savings_that_match_the_traces(
    served: dict[str, Any], page: Any
) -> None:
    url = served["gw"].url
    sign_in(page, url)
    requests = page.locator("[data-kpi=requests] .value")
    sync_api.expect(requests).to_have_attribute("data-value", str(len(served["sent"])))
    savings = float(page.locator("[data-kpi=savings] .value").get_attribute("data-value"))
    expected = expected_savings(served["traces"])
    assert expected > 0
    assert savings == pytest.approx(expected, rel=1e-9)
    sync_api.expect(page.locator("#chart-decisions svg rect").first).to_be_attached()
    sync_api.expect(page.locator("#totals")).to_contain_text("coding")
    shot(page, "dashboard-overview.png")
    assert page.problems == []


def test_traces_show_the_request_just_sent_and_filter(served: dict[str, Any], page: Any) -> None:
    url = served["gw"].url
    sign_in(page, url)
    page.locator("#nav a[data-view=traces]").click()
    newest = page.locator("#trace-table tbody tr").first
    sync_api.expect(newest).to_have_attribute("data-trace", served["sent"][-1]["trace_id"])
    sync_api.expect(page.locator("#trace-table tbody tr")).to_have_count(len(served["sent"]))
    # A request sent while the page is open shows up on its own (the page refreshes).
    served["sent"] += send_traffic(served["gw"].base_url, [("beta", "auto", "one more", False)])
    served["traces"] = wait_for_traces(url, len(served["sent"]))
    sync_api.expect(newest).to_have_attribute("data-trace", served["sent"][-1]["trace_id"])
    sync_api.expect(page.locator("#trace-table tbody tr")).to_have_count(len(served["sent"]))
    shot(page, "dashboard-traces.png")

    page.locator("#filters select[name=key]").select_option("beta")
    page.locator("#filters button[type=submit]").click()
    beta = [s["trace_id"] for s in served["sent"] if s["key"] == "beta"]
    rows = page.locator("#trace-table tbody tr")
    sync_api.expect(rows).to_have_count(len(beta))
    assert [rows.nth(i).get_attribute("data-trace") for i in range(len(beta))] == beta[::-1]

    page.locator("#filters button[type=reset]").click()
    page.locator("#filters select[name=decision]").select_option("coding")
    page.locator("#filters button[type=submit]").click()
    coding = [
        t["trace_id"] for t in served["traces"] if (t["route"] or {}).get("decision") == "coding"
    ]
    sync_api.expect(rows).to_have_count(len(coding))

    page.locator("#filters button[type=reset]").click()
    page.locator("#filters select[name=status]").select_option("error")
    page.locator("#filters button[type=submit]").click()
    sync_api.expect(rows).to_have_count(1)
    sync_api.expect(rows.first).to_contain_text("404")
    assert page.problems == []


def test_one_trace_shows_its_decision_path(served: dict[str, Any], page: Any) -> None:
    url = served["gw"].url
    coding = next(t for t in served["traces"] if (t["route"] or {}).get("decision") == "coding")
    sign_in(page, url)
    page.locator("#nav a[data-view=traces]").click()
    page.locator(f"#trace-table tr[data-trace='{coding['trace_id']}']").click()
    view = page.locator("#view-trace")
    sync_api.expect(view.locator("h1")).to_contain_text(coding["trace_id"])
    signal = coding["route"]["signals"]["keyword:code"]
    sync_api.expect(view).to_contain_text("keyword:code")
    sync_api.expect(view).to_contain_text(str(signal["value"]))
    sync_api.expect(view.locator("#rule-path li.matched")).to_contain_text("coding: keyword:code=T")
    for candidate in coding["route"]["candidates"]:
        sync_api.expect(view).to_contain_text(candidate["model"])
    sync_api.expect(view.locator("tr.highlight")).to_contain_text(coding["route"]["model"])
    attempt = coding["attempts"][0]
    sync_api.expect(view).to_contain_text(attempt["upstream"])
    saved = coding["counterfactual"]["max_candidate"] - coding["cost"]
    shown = view.locator("[data-kpi=trace-savings] .value").get_attribute("data-value")
    assert float(shown) == pytest.approx(saved, rel=1e-9)
    shot(page, "dashboard-trace.png")
    assert page.problems == []


def test_endpoints_and_the_latest_evaluation_report(served: dict[str, Any], page: Any) -> None:
    url = served["gw"].url
    sign_in(page, url)
    page.locator("#nav a[data-view=endpoints]").click()
    sync_api.expect(page.locator("#view-endpoints .badge.closed").first).to_be_visible()
    sync_api.expect(page.locator("#view-endpoints")).to_contain_text("fake/b")
    shot(page, "dashboard-endpoints.png")
    page.locator("#nav a[data-view=eval]").click()
    report = page.locator("#view-eval")
    sync_api.expect(report.locator("h2").nth(1)).to_have_text("syn")
    sync_api.expect(report).to_contain_text("cluster")
    served = report.locator("tr.highlight")
    sync_api.expect(served).to_have_count(1)
    sync_api.expect(served).to_contain_text("mean (served)")
    sync_api.expect(report).to_contain_text("decision coding, fitted on syn")
    image = report.locator("img")
    sync_api.expect(image).to_have_attribute("src", re.compile(r"^blob:"))
    page.wait_for_function("document.querySelector('#view-eval img').naturalWidth > 0")
    shot(page, "dashboard-eval.png")
    assert page.problems == []


def test_the_eval_html_report_has_the_dashboards_look(served: dict[str, Any], page: Any) -> None:
    page.goto(served["report"].as_uri())
    sync_api.expect(page.locator(".bar .brand")).to_be_visible()
    header = page.locator("th").first
    dashboard_header = "rgb(95, 107, 128)"  # --muted of crossroads.css
    assert header.evaluate("e => getComputedStyle(e).color") == dashboard_header
    page.wait_for_function("[...document.images].every(i => i.naturalWidth > 0)")
    shot(page, "eval-report.png")
    assert page.problems == []
