"""Any LM, really: the advice path against a real OpenAI-compatible HTTP server.

The server is llama-cpp-python's own (``python -m llama_cpp.server``, the ``server`` extra of
llama-cpp-python) serving the shipped SmolLM2 GGUF, started by this module on a free port. The
LM is a plain ``dspy.LM("openai/...", api_base=...)``, built through the ``python:`` factory
of ``llm_config`` as a user would. The schema travels as ``response_format``; this server
refuses the OpenAI form and takes llama.cpp's, which the adapter switches to once.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import dspy
import httpx
import pytest

pytest.importorskip(
    "llama_cpp.server.app",
    reason="llama-cpp-python's server extra is not installed "
    "(pip install 'llama-cpp-python[server]'); CI installs it",
)

from hybridmcp import Coordinator, parse_task
from hybridmcp.capabilities.local_model import smollm2_gguf_path
from hybridmcp.prompts.arbitrator import ALLOCATION_CHOICES
from hybridmcp.prompts.asking import LM_FALLBACK
from hybridmcp.prompts.models import make_lm
from hybridmcp.prompts.running import arun_signature
from hybridmcp.prompts.signatures import HybridCoordinatorSignature
from tests.conftest import time_server_config

pytestmark = pytest.mark.integration

_BASE: dict[str, str] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    # The server logs a lot (the model's metadata, every request's timings): into a file, since
    # a pipe nobody reads fills up and blocks it.
    log = (tmp_path_factory.mktemp("llama-server") / "server.log").open("w+b")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(smollm2_gguf_path()),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--n_threads",
            "2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"llama_cpp.server exited: {log.read()[-2000:]!r}")
            try:
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("llama_cpp.server did not start within 120 s")
            time.sleep(0.5)
        _BASE["url"] = base
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def served_lm(temperature: float = 0.2, max_tokens: int = 1500, **_: Any) -> dspy.BaseLM:
    """The ``python:`` LM factory a user would write for their own server."""
    return dspy.LM(
        "openai/smollm2",
        api_base=_BASE["url"],
        api_key="not-needed",
        temperature=temperature,
        max_tokens=max_tokens,
        cache=False,
        num_retries=0,
    )


async def test_a_spec_signature_answered_by_the_http_server_is_parsed(server):
    lm = make_lm("python:tests.integration.test_lm_server:served_lm", max_tokens=1500)
    outcome = await arun_signature(
        HybridCoordinatorSignature,
        lm,
        time_limit=120,
        task_requirements='[{"id": "r1", "skill": "time.now"}]',
        internal_capabilities='{"time.now": ["builtin"]}',
        external_services='{"time.now": ["time/get_current_time"]}',
        optimization_criteria='{"performance": 0.4, "cost": 0.3}',
    )
    assert outcome.error is None, outcome.error  # the server bound the answer to the schema
    for name in HybridCoordinatorSignature.output_fields:
        assert str(getattr(outcome.prediction, name)).strip()
    sent = lm.history[-1]
    assert sent["usage"]["completion_tokens"] < 500  # sized to the schema, not 1,500


async def test_the_http_server_as_arbitrator_in_a_run(server):
    config = time_server_config(
        arbitration_config={"bias_ratio": 100.0},  # every auto request is in the hybrid band
        llm_config={
            "arbitrator_model": "python:tests.integration.test_lm_server:served_lm",
            "timeout_ms": 120_000,
        },
    )
    requests = [{"id": "tokyo", "skill": "time.now", "args": {"timezone": "Asia/Tokyo"}}]
    async with asyncio.timeout(240), Coordinator.open(config) as co:
        out = await co.run(parse_task({"requests": requests}))
    assert not [e for e in out["events"] if e["code"] == LM_FALLBACK]
    advice = out["results"]["tokyo"]["allocation_advice"]
    assert advice["decision"] in ALLOCATION_CHOICES  # the server's own parsed answer
    (record,) = out["metrics"]["advice"]["records"]
    assert record["advice"] == advice["decision"] and record["truth"]
