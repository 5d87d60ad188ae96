import asyncio
from pathlib import Path

import httpx
import pytest

from crossroads.config import parse_config
from crossroads.exceptions import ConfigError
from crossroads.local.upstreams import local_upstreams, start_local_upstreams

from .conftest import require_model


def config(**upstream: object) -> dict[str, object]:
    return {
        "upstreams": [
            {"name": "remote", "base_url": "http://10.0.0.1:8000/v1"},
            {"name": "tiny", "kind": "local", "model": "smollm2-135m-instruct", **upstream},
        ],
        "models": [{"name": "a", "upstream": "tiny"}, {"name": "b", "upstream": "remote"}],
    }


def test_local_upstream_names_a_bundled_model() -> None:
    cfg = parse_config(config())
    (local,) = local_upstreams(cfg)
    assert local.model == "smollm2-135m-instruct" and local.n_threads == 1
    with pytest.raises(ConfigError, match="unknown local model 'gpt-9'; bundled: smollm2"):
        parse_config(config(model="gpt-9"))


def test_a_config_without_local_upstreams_is_returned_unchanged() -> None:
    cfg = parse_config({"upstreams": [{"name": "r", "base_url": "http://h/v1"}],
                        "models": [{"name": "m", "upstream": "r"}]})  # fmt: skip
    assert asyncio.run(start_local_upstreams(cfg)) == (cfg, None)


@pytest.mark.local_models
def test_starting_fills_in_the_base_url_and_leaves_other_upstreams_alone(tmp_path: Path) -> None:
    require_model("smollm2-135m-instruct")
    cfg = parse_config(config(n_ctx=1024))

    async def scenario() -> None:
        started, pool = await start_local_upstreams(cfg, data_dir=tmp_path)
        assert pool is not None
        try:
            remote, tiny = started.upstreams
            assert remote == cfg.upstreams[0]
            assert tiny.base_url == pool.base_urls["smollm2-135m-instruct"]
            assert tiny.base_url.startswith("http://127.0.0.1:") and ":0/" not in tiny.base_url
            async with httpx.AsyncClient() as client:
                models = await client.get(f"{tiny.base_url}/models", timeout=5)
            assert models.status_code == 200
        finally:
            await pool.stop()
        assert await pool.health() == {"smollm2-135m-instruct": False}

    asyncio.run(scenario())
