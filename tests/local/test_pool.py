import asyncio
from pathlib import Path

import httpx
import pytest

from crossroads.exceptions import LocalModelError
from crossroads.local import LocalModelPool
from crossroads.local import pool as pool_module

from .conftest import require_model


@pytest.mark.local_models
def test_pool_starts_both_models_and_stops_them(data_dir: Path) -> None:
    require_model("smollm2-135m-instruct")
    require_model("gemma-3-270m")
    pool = LocalModelPool(data_dir=data_dir)

    async def scenario() -> None:
        async with pool:
            urls = pool.base_urls
            assert set(urls) == {"smollm2-135m-instruct", "gemma-3-270m"}
            assert len(set(urls.values())) == 2
            assert await pool.health() == {"smollm2-135m-instruct": True, "gemma-3-270m": True}
            async with httpx.AsyncClient(timeout=60) as client:
                response = await client.post(
                    f"{urls['gemma-3-270m']}/completions",
                    json={"prompt": "The capital of France is", "max_tokens": 4, "temperature": 0},
                )
            assert response.status_code == 200, response.text
            assert response.json()["choices"][0]["text"]
            assert (data_dir / "logs" / "gemma-3-270m.log").is_file()
        assert await pool.health() == {"smollm2-135m-instruct": False, "gemma-3-270m": False}

    asyncio.run(scenario())


def test_pool_without_llama_cpp_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(pool_module, "llama_server_installed", lambda: False)
    with pytest.raises(LocalModelError, match="pip install"):
        asyncio.run(LocalModelPool(data_dir=tmp_path).start())


def test_pool_with_an_unknown_model_fails_before_starting_anything(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(pool_module, "llama_server_installed", lambda: True)
    pool = LocalModelPool(["nope"], data_dir=tmp_path)
    with pytest.raises(LocalModelError, match="Unknown local model 'nope'"):
        asyncio.run(pool.start())
    assert pool.servers == {}


@pytest.mark.local_models
def test_chat_on_the_base_model_stops_at_the_next_user_turn(data_dir: Path) -> None:
    require_model("gemma-3-270m")
    pool = LocalModelPool(["gemma-3-270m"], data_dir=data_dir)

    async def scenario() -> dict[str, object]:
        async with pool, httpx.AsyncClient(timeout=60) as client:
            response = await client.post(
                f"{pool.base_urls['gemma-3-270m']}/chat/completions",
                json={
                    "messages": [{"role": "user", "content": "What is the capital of France?"}],
                    "max_tokens": 24,
                    "temperature": 0,
                },
            )
            assert response.status_code == 200, response.text
            return dict(response.json()["choices"][0])

    choice = asyncio.run(scenario())
    text = str(choice["message"]["content"])  # type: ignore[index]
    assert "User:" not in text and "[INST]" not in text and "<SYS>" not in text
    assert choice["finish_reason"] == "stop"
