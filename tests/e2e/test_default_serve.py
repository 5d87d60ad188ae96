"""End to end: ``crossroads serve`` with no config, real local models, the official SDK.

The environment is scrubbed of provider keys and Ollama discovery is off, so the built-in
config holds exactly the two local models.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from crossroads.local.catalog import LLAMA_INSTALL, LOCAL_MODELS, missing_requirements

pytestmark = [pytest.mark.local_models, pytest.mark.slow]
SCRUBBED = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "CROSSROADS_CONFIG")


@dataclass
class Served:
    base: str
    data: Path
    log: Path
    process: subprocess.Popen[bytes]

    def local_pid(self, model: str, wait: float = 60.0) -> int:
        """The pid of the (current) server of a local model: a child of crossroads serve.
        Waits (bounded) for the supervisor to have restarted one that was killed."""
        deadline = time.monotonic() + wait
        while True:
            for pid, cmdline in _children(self.process.pid):
                if model.encode() in cmdline:
                    return pid
            if time.monotonic() > deadline:
                raise AssertionError(f"no running server for {model} under pid {self.process.pid}")
            time.sleep(0.2)


def _children(parent: int) -> list[tuple[int, list[bytes]]]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent and fields[0] != "Z":
            found.append((int(stat.parent.name), cmdline))
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _require_everything() -> None:
    missing = missing_requirements(list(LOCAL_MODELS))
    if missing:
        pytest.skip("local models are not installed: " + "; ".join(missing or [LLAMA_INSTALL]))


def _serve(tmp: Path) -> Iterator[Served]:
    _require_everything()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env.update({"CROSSROADS_DATA_DIR": str(tmp / "data"), "CROSSROADS_OLLAMA_URL": ""})
    log = tmp / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "crossroads.cli", "serve", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp,
        )  # fmt: skip
    served = Served(f"http://127.0.0.1:{port}", tmp / "data", log, process)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(served.base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"crossroads serve did not start:\n{log.read_text()}")
            time.sleep(0.2)
        yield served
    finally:
        pids = [pid for pid, _ in _children(process.pid)]
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        for pid in pids:  # the gateway stops its model servers on the way out
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not _alive(pid), f"local model server {pid} outlived crossroads serve"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _serve(tmp_path_factory.mktemp("e2e"))


@pytest.fixture
def served_alone(tmp_path: Path) -> Iterator[Served]:
    """A server of its own, for tests that break it."""
    yield from _serve(tmp_path)


def client(served: Served):  # type: ignore[no-untyped-def]
    import openai

    return openai.OpenAI(base_url=served.base + "/v1", api_key="-", max_retries=0, timeout=120)


def test_banner_shows_url_pool_policy_and_examples(served: Served) -> None:
    text = served.log.read_text()
    assert f"crossroads serving on {served.base}/v1" in text
    assert "OPENAI_API_KEY not set" in text
    for model in ("smollm2", "gemma3"):
        assert f"model {model}" in text
    assert "local smollm2-135m-instruct" in text and "local gemma-3-270m" in text
    assert "if any(metadata:completions_api, regex:continuation) → gemma3, smollm2" in text
    assert "else → smollm2, gemma3 (chat)" in text
    assert "curl " in text and "openai.OpenAI(" in text


def test_models_list(served: Served) -> None:
    assert [m.id for m in client(served).models.list()] == ["auto", "smollm2", "gemma3"]


def test_chat_goes_to_the_instruct_model(served: Served) -> None:
    raw = client(served).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Name three colours."}], max_tokens=8
    )
    completion = raw.parse()
    assert completion.choices[0].message.content.strip()
    assert 0 < completion.usage.completion_tokens <= 8
    assert raw.headers["x-crossroads-model"] == "smollm2"
    assert raw.headers["x-crossroads-decision"] == "chat"
    _assert_traced(served, raw.headers["x-crossroads-trace-id"], "smollm2")


def test_streamed_chat(served: Served) -> None:
    raw = client(served).chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert raw.headers["x-crossroads-model"] == "smollm2"
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    _assert_traced(served, raw.headers["x-crossroads-trace-id"], "smollm2", stream=True)


def test_anthropic_messages_and_responses_reach_the_local_model(served: Served) -> None:
    import anthropic

    with anthropic.Anthropic(base_url=served.base, api_key="-", max_retries=0, timeout=120) as c:
        raw = c.messages.with_raw_response.create(
            model="auto", max_tokens=8, messages=[{"role": "user", "content": "Say hello."}]
        )
        message = raw.parse()
        assert message.content[0].text.strip() and 0 < message.usage.output_tokens <= 8
        assert raw.headers["x-crossroads-model"] == "smollm2"
        with c.messages.stream(
            model="auto", max_tokens=8, messages=[{"role": "user", "content": "Say hi."}]
        ) as stream:
            assert stream.get_final_message().content[0].text.strip()
    response = client(served).responses.create(
        model="auto", input="Say hello.", max_output_tokens=8
    )
    assert response.output_text.strip() and response.usage.output_tokens > 0


def test_text_to_continue_goes_to_the_base_model(served: Served) -> None:
    c = client(served)
    raw = c.completions.with_raw_response.create(
        model="auto", prompt="The capital of France is", max_tokens=6
    )
    assert raw.headers["x-crossroads-model"] == "gemma3"
    assert raw.headers["x-crossroads-decision"] == "continue_text"
    assert raw.parse().choices[0].text.strip()
    raw = c.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": "Continue: the old lighthouse keeper"}],
        max_tokens=6,
    )
    assert raw.headers["x-crossroads-model"] == "gemma3"
    assert raw.parse().choices[0].message.content is not None


def _assert_traced(served: Served, trace_id: str, model: str, stream: bool = False) -> None:
    from crossroads.store.sqlite import SQLiteTraceStore

    store = SQLiteTraceStore(served.data / "traces.db")
    deadline = time.monotonic() + 10
    while not (row := next((r for r in store.recent(200) if r["trace_id"] == trace_id), None)):
        assert time.monotonic() < deadline, f"trace {trace_id} never reached the store"
        time.sleep(0.1)
    assert row["model"] == model and row["status"] in (None, 200)
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
    assert row["cost"] == 0


def test_a_killed_model_server_is_replaced_then_restarted(served_alone: Served) -> None:
    c = client(served_alone)
    first = c.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    assert first.headers["x-crossroads-model"] == "smollm2"
    for stream in (False, True):
        # the supervisor restarts it within seconds: kill whichever server runs now
        os.kill(served_alone.local_pid("smollm2-135m-instruct"), signal.SIGKILL)
        raw = c.chat.completions.with_raw_response.create(
            model="auto",
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            max_tokens=8,
            stream=stream,
        )
        assert raw.http_response.status_code == 200
        assert raw.headers["x-crossroads-model"] == "gemma3", raw.headers
        if stream:
            text = "".join(ch.choices[0].delta.content or "" for ch in raw.parse() if ch.choices)
        else:
            text = raw.parse().choices[0].message.content
        assert text is not None
    # the supervisor restarts SmolLM2 on its port, and chat goes back to it
    deadline = time.monotonic() + 90
    while True:
        raw = c.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "Hi"}], max_tokens=2
        )
        if raw.headers["x-crossroads-model"] == "smollm2":
            break
        assert time.monotonic() < deadline, "SmolLM2 never came back after being killed"
        time.sleep(1)
