"""Plugins really plug in: a signal, a selector and an upstream defined outside the package,
declared by entry points of an installed distribution, are named by ``kind:``/``method:`` in
a config like built-ins, and serve a request through the gateway."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crossroads.config import parse_config
from crossroads.exceptions import ConfigError
from crossroads.gateway import create_app
from crossroads.registry import ROUTERS, SELECTORS, SIGNALS, STORES, UPSTREAMS, Registry
from crossroads.store.memory import MemoryTraceStore

PLUGIN = '''
from typing import Literal

from crossroads.config.signals import _SignalBase
from crossroads.config.base import _Strict
from crossroads.config.upstreams import _UpstreamBase
from crossroads.dispatch.mock import MockUpstream
from crossroads.store.memory import MemoryTraceStore
from crossroads.selection import Selector
from crossroads.signals.base import Signal
from crossroads.types import SignalResult


class ShoutConfig(_SignalBase):
    kind: Literal["shout"]
    min_letters: int = 3


class ShoutSignal(Signal):
    """Matches when the prompt is written in capitals."""
    kind = "shout"
    config_class = ShoutConfig

    def compute(self, request):
        letters = [c for c in request.text if c.isalpha()]
        loud = len(letters) >= self.config.min_letters and all(c.isupper() for c in letters)
        return SignalResult(self.name, loud, loud)


class LastConfig(_Strict):
    method: Literal["last"]


class LastSelector(Selector):
    """The last eligible candidate."""
    method = "last"
    config_class = LastConfig

    def select(self, request, candidates):
        return candidates[-1]


class CannedConfig(_UpstreamBase):
    kind: Literal["canned"]
    base_url: str = "http://canned.invalid"
    reply: str = "canned: {last}"
    chunks: int = 2


class CannedUpstream(MockUpstream):
    """An upstream plugin: the in-memory upstream under another name."""
    config_class = CannedConfig


KEPT = []


class ListStore(MemoryTraceStore):
    """A trace store plugin: keeps traces in memory and in KEPT."""

    def record(self, trace):
        KEPT.append(trace)
        super().record(trace)


def list_store(spec, **settings):
    return ListStore()


from crossroads.routers.baselines import MeanRouter


class FirstRouter(MeanRouter):
    """A router plugin."""
'''


@pytest.fixture
def plugin_dist(tmp_path: Path) -> Iterator[None]:
    (tmp_path / "xr_plugin.py").write_text(PLUGIN)
    info = tmp_path / "xr_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: xr-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [crossroads.signals]
            shout = xr_plugin:ShoutSignal
            [crossroads.selectors]
            last = xr_plugin:LastSelector
            [crossroads.upstreams]
            canned = xr_plugin:CannedUpstream
            [crossroads.stores]
            listed = xr_plugin:list_store
            [crossroads.routers]
            pinned = xr_plugin:FirstRouter
            """
        )
    )
    sys.path.insert(0, str(tmp_path))
    registries: list[Registry[Any]] = [SIGNALS, SELECTORS, UPSTREAMS, STORES, ROUTERS]
    for registry in registries:
        registry.reload_plugins()
    try:
        yield
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("xr_plugin", None)
        for registry in registries:
            for name in ("shout", "last", "canned", "listed", "pinned"):
                registry._items.pop(name, None)
            registry.reload_plugins()


CONFIG = {
    "upstreams": [{"name": "u", "kind": "canned"}],
    "models": [{"name": "a", "upstream": "u"}, {"name": "b", "upstream": "u"}],
    "signals": [{"kind": "shout", "name": "loud", "min_letters": 2}],
    "decisions": [
        {"name": "loud", "when": "shout:loud", "models": ["a", "b"], "selection": "last"}
    ],
    "default": {"models": ["a"]},
}


async def test_plugin_signal_selector_and_upstream_serve_a_request(plugin_dist) -> None:
    config = parse_config(CONFIG)
    assert type(config.signals[0]).__name__ == "ShoutConfig"
    app = create_app(config, store=MemoryTraceStore())
    await app.startup()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gw"
        ) as client:
            loud = await client.post(
                "/v1/chat/completions",
                json={"model": "auto", "messages": [{"role": "user", "content": "HELLO THERE"}]},
            )
            quiet = await client.post(
                "/v1/chat/completions",
                json={"model": "auto", "messages": [{"role": "user", "content": "hello"}]},
            )
    finally:
        await app.shutdown()
    assert loud.status_code == 200, loud.text
    assert loud.headers["x-crossroads-decision"] == "loud"
    assert loud.headers["x-crossroads-model"] == "b"  # the plugin selector picked the last
    assert loud.json()["choices"][0]["message"]["content"] == "canned: HELLO THERE"
    assert quiet.headers["x-crossroads-decision"] == "default"


def test_plugin_config_errors_have_their_yaml_path(plugin_dist) -> None:
    bad = {**CONFIG, "signals": [{"kind": "shout", "name": "loud", "min_letters": "many"}]}
    with pytest.raises(ConfigError) as info:
        parse_config(bad)
    assert any(path == "signals[0].min_letters" for path, _ in info.value.problems)


def test_unknown_kind_without_plugin_is_still_a_clear_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({**CONFIG, "upstreams": [{"name": "u", "kind": "nope"}]})
    assert "unknown kind 'nope'" in str(info.value)


async def test_plugin_store_and_router_are_named_like_built_ins(plugin_dist) -> None:
    from crossroads.routers import make

    assert type(make("pinned")).__name__ == "FirstRouter"
    config = parse_config({**CONFIG, "store": {"traces": "listed"}})
    app = create_app(config)
    await app.startup()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gw"
        ) as client:
            r = await client.post(
                "/v1/chat/completions",
                json={"model": "auto", "messages": [{"role": "user", "content": "hello"}]},
            )
    finally:
        await app.shutdown()
    assert r.status_code == 200
    assert [t.trace_id for t in sys.modules["xr_plugin"].KEPT] == [
        r.headers["x-crossroads-trace-id"]
    ]
