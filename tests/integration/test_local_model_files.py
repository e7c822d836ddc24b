"""A local model file that is not a model: a configuration error when the LM is built (one
line, exit 2), or, for a damaged body found only when the weights load, one clear error that
every later call gets without reading the file again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip(
    "llama_cpp",
    reason="llama-cpp-python is not installed (pip install 'hybridmcp[local]'); "
    "CI installs it, so these tests run there",
)

from hybridmcp.capabilities.local_model import check_gguf, get_local_model, smollm2_gguf_path
from hybridmcp.errors import ConfigError
from hybridmcp.prompts.models import make_lm

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
HYBRIDMCP = str(Path(sys.executable).with_name("hybridmcp"))
NOT_MODELS = {
    "empty": b"",
    "an error page": b"<!DOCTYPE html><html><body>429 Too Many Requests</body></html>",
    "random bytes": bytes(range(256)) * 64,
}


def test_the_shipped_model_passes_the_header_check():
    check_gguf(smollm2_gguf_path())


@pytest.mark.parametrize("data", list(NOT_MODELS.values()), ids=list(NOT_MODELS))
def test_a_file_that_is_not_a_model_fails_when_the_lm_is_built(tmp_path, data):
    path = tmp_path / "model.gguf"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match="is not a GGUF model"):
        make_lm(f"local:{path}")


def test_the_cli_refuses_it_in_one_line_before_running(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(NOT_MODELS["an error page"])
    config = tmp_path / "config.yaml"
    config.write_text(f"llm_config: {{coordinator_model: 'local:{path}'}}\n")
    task = tmp_path / "task.yaml"
    task.write_text("requests:\n  - {id: w, skill: text.stats, args: {text: 'a b c'}}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    done = subprocess.run(
        [HYBRIDMCP, "run", str(task), "-c", str(config), "--db", ":memory:"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: local model file") and "is not a GGUF model" in line


def test_a_model_cut_short_fails_once_and_is_read_again_only_once_replaced(tmp_path):
    whole = smollm2_gguf_path().read_bytes()
    path = tmp_path / "cut.gguf"
    path.write_bytes(whole[: len(whole) // 3])  # a download that stopped: its header is right
    check_gguf(path)
    with pytest.raises(ConfigError, match="did not load") as first:
        get_local_model(path)
    with pytest.raises(ConfigError) as again:
        get_local_model(path)
    assert again.value is first.value  # the one failure, not a second load
    path.write_bytes(whole)  # the download finished: the file is tried again, and loads
    assert get_local_model(path).n_ctx > 0
