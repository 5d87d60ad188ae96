"""Property-based tests of the whole gateway from its own OpenAPI document (schemathesis):
a live gateway on a free loopback port, over the mock upstream, answers every generated
request (valid ones and deliberately invalid ones) without a 5xx, in time, and as its
document says. Bounded and deterministic: a fixed number of cases per operation, derandomized."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

import requests  # noqa: E402  (schemathesis' own transport)
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

from crossroads.config import parse_config  # noqa: E402
from crossroads.gateway import create_app  # noqa: E402
from crossroads.gateway.protocol import GatewayProtocol  # noqa: E402
from crossroads.store.memory import MemoryTraceStore  # noqa: E402
from tests.support.server_thread import BackgroundServer  # noqa: E402

MODELS = ["auto", "small", "big"]
API_KEY = "sk-schemathesis"
CONFIG = {
    "upstreams": [{"name": "mock", "kind": "mock", "chunks": 2}],
    "models": [
        {"name": "small", "upstream": "mock", "context_window": 4096},
        {"name": "big", "upstream": "mock", "serves": ["chat", "completions", "embeddings"]},
    ],
    "default": {"models": ["small", "big"]},
    # The admin key is the client key here, so that one header reaches the admin API too.
    "server": {
        "api_keys": [{"name": "fuzz", "key_env": "CROSSROADS_SCHEMATHESIS_KEY"}],
        "admin_key_env": "CROSSROADS_SCHEMATHESIS_KEY",
    },
    "store": {"traces": "memory"},
}
# (method, path, positive cases, negative cases): about 2,400 requests in all.
OPERATIONS = [
    ("POST", "/v1/chat/completions", 300, 150),
    ("POST", "/v1/completions", 200, 100),
    ("POST", "/v1/messages", 300, 150),
    ("POST", "/v1/messages/count_tokens", 100, 60),
    ("POST", "/v1/responses", 300, 150),
    ("POST", "/v1/embeddings", 100, 100),
    ("GET", "/v1/models", 10, 0),
    ("GET", "/v1/models/{id}", 50, 0),
    ("GET", "/v1/crossroads/endpoints", 10, 0),
    ("GET", "/health", 5, 0),
    ("GET", "/ready", 5, 0),
    ("GET", "/metrics", 5, 0),
    ("GET", "/openapi.json", 5, 0),
    ("GET", "/v1/crossroads/admin/traces", 80, 60),
    ("GET", "/v1/crossroads/admin/traces/{id}", 20, 0),
    ("GET", "/v1/crossroads/admin/stats", 80, 60),
    ("GET", "/v1/crossroads/admin/endpoints", 5, 0),
    ("GET", "/v1/crossroads/admin/settings", 5, 0),
    ("GET", "/v1/crossroads/admin/eval", 5, 0),
    ("GET", "/v1/crossroads/admin/eval/{name}", 10, 0),
    ("GET", "/ui/{file}", 20, 0),
    ("GET", "/v1/crossroads/admin/keys", 10, 10),
    ("POST", "/v1/crossroads/admin/keys", 80, 60),
    ("GET", "/v1/crossroads/admin/keys/{ref}", 20, 0),
    ("DELETE", "/v1/crossroads/admin/keys/{ref}", 20, 0),
    ("POST", "/v1/crossroads/admin/keys/{ref}/rotate", 20, 0),
    ("GET", "/v1/crossroads/admin/teams", 5, 0),
    ("POST", "/v1/crossroads/admin/teams", 60, 40),
    ("GET", "/v1/crossroads/admin/teams/{name}", 20, 0),
    ("DELETE", "/v1/crossroads/admin/teams/{name}", 20, 0),
    ("GET", "/v1/crossroads/admin/spend", 40, 20),
    ("POST", "/v1/crossroads/admin/reload", 3, 0),
    ("POST", "/v1/crossroads/feedback", 80, 60),
]
TIMEOUT_S = 5  # a request that takes longer counts as a hang


def whole_numbers(value: Any) -> Any:
    """``value`` with floats such as 1.0 as ints. JSON Schema counts 1.0 as an integer, so
    schemathesis sends it for integer fields; the gateway validates strictly and answers 400,
    so valid cases would rarely get past ``max_tokens``."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [whole_numbers(v) for v in value]
    return value


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    mp = pytest.MonkeyPatch()
    mp.setenv("CROSSROADS_SCHEMATHESIS_KEY", API_KEY)
    config = copy.deepcopy(CONFIG)
    config["store"]["keys"] = f"sqlite:///{tmp_path_factory.mktemp('keys')}/keys.db"
    app = create_app(parse_config(config), store=MemoryTraceStore())
    try:
        with BackgroundServer(app, http=GatewayProtocol, lifespan="on") as server:
            yield server.url
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def api_schema(gateway_url: str) -> Any:
    document = requests.get(gateway_url + "/openapi.json", timeout=TIMEOUT_S).json()
    # Steer valid requests to configured models: a random model name is only ever a 404.
    for name, schema in document["components"]["schemas"].items():
        if name.endswith("Request"):
            schema["properties"]["model"] = {"enum": MODELS}
    get_model = document["paths"]["/v1/models/{id}"]["get"]
    get_model["parameters"][0]["schema"] = {"anyOf": [{"enum": MODELS}, {"type": "string"}]}
    schema = schemathesis.openapi.from_dict(document, config=schemathesis.Config())
    schema.config.update(base_url=gateway_url)
    return schema


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def test_the_document_is_openapi_3_1_and_covers_every_route(api_schema: Any) -> None:
    api_schema.validate()
    raw = api_schema.raw_schema
    assert raw["openapi"] == "3.1.0"
    documented = {(m.upper(), p) for p, item in raw["paths"].items() for m in item}
    assert documented == {(m, p) for m, p, _, _ in OPERATIONS}
    messages = raw["paths"]["/v1/messages"]["post"]["responses"]["400"]
    assert messages["content"]["application/json"]["schema"]["$ref"].endswith("AnthropicError")


# Operations without inputs have no invalid requests to make: positive cases only.
RUNS = [
    (method, path, mode, count)
    for method, path, positive, negative in OPERATIONS
    for mode, count in (("positive", positive), ("negative", negative))
    if count
]


@pytest.mark.parametrize(
    ("method", "path", "mode", "examples"), RUNS, ids=[f"{m} {p} {g}" for m, p, g, _ in RUNS]
)
def test_no_server_errors_and_answers_match_the_document(
    api_schema: Any,
    session: requests.Session,
    gateway_url: str,
    method: str,
    path: str,
    mode: str,
    examples: int,
) -> None:
    operation = api_schema[path][method]
    strategy = operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode))
    checks = [not_a_server_error, response_schema_conformance]

    @given(case=strategy)
    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        headers = {"authorization": f"Bearer {API_KEY}"}
        if mode == "positive" and isinstance(case.body, dict):
            case.body = whole_numbers(case.body)
        # A timeout raises: a request the gateway never answers fails the test.
        response = case.call(
            base_url=gateway_url, session=session, headers=headers, timeout=TIMEOUT_S
        )
        case.validate_response(response, checks=checks)

    run()
