"""The privacy properties through the real gate: values of every kind, whole or cut at any
position across two fields, nested, with text around them, sent by the coordinator under each
policy to fault servers that record every argument they receive (stdio, ``--record``).

Values written in a form a reader decodes (tests/unit/test_privacy_encodings.py) run the same
way. Under ``refuse``, ``route_internal`` and ``redact`` no raw value and no fragment of 6 or more
characters of it may reach a server cleared ``public``; redacted answers come back restored.
A sample of the shaped corpus (tuned and held-out shapes) runs the same way; the whole corpus
runs through the pure functions in tests/unit/test_privacy_forms.py.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from hybridmcp.config import parse_config
from hybridmcp.coordinator import Coordinator
from hybridmcp.task import parse_task
from hybridmcp.testing.canary import fragments_leaked, shaped_corpus, strings_in
from hybridmcp.testing.harness import faultserver_stdio
from tests.privacy_cases import (
    NumberCase,
    PrivacyCase,
    encoded_cases,
    fragments,
    keyed_cases,
    number_cases,
    privacy_cases,
)

pytestmark = pytest.mark.integration

POLICIES = ("refuse", "route_internal", "redact")
INTERNAL = {"side": "internal", "function": "tests.helpers:echo_payload"}
SRC = Path(__file__).resolve().parents[2] / "src"


def _external(server: str) -> dict[str, Any]:
    return {
        "side": "external",
        "server": server,
        "tool": "echo_json",
        "arguments": {"payload": "$"},
        "timeout_ms": 20_000,
    }


class Recorded:
    """A coordinator on its own event loop (kept across Hypothesis examples) and the files its
    recording servers write."""

    def __init__(self, tmp: Path) -> None:
        self.files = {p: tmp / f"{p}.jsonl" for p in POLICIES}
        skills = {
            f"leak.{p}": {
                "input_schema": {"type": "object"},
                "providers": [*([INTERNAL] if p == "route_internal" else []), _external(p)],
            }
            for p in POLICIES
        }
        self.cfg = parse_config(
            {
                "mcpServers": {
                    p: faultserver_stdio(record=path, clearance="public")
                    for p, path in self.files.items()
                },
                "skills": skills,
                "privacy": {"skills": {f"leak.{p}": p for p in POLICIES}},
            }
        )
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._cm = Coordinator.open(self.cfg)
        self.co = self._await(self._cm.__aenter__())
        self.n = 0

    def _await(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=120)

    def run(self, policy: str, args_list: list[dict[str, Any]]) -> tuple[dict, list[Any]]:
        """Run the requests; return the output and what the server received for them."""
        ids = []
        reqs = []
        for args in args_list:
            self.n += 1
            ids.append(f"r{self.n}")
            reqs.append(
                {"id": ids[-1], "skill": f"leak.{policy}", "args": {**args, "case_id": ids[-1]}}
            )
        out = self._await(self.co.run(parse_task(reqs)))
        path = self.files[policy]
        lines = path.read_text().splitlines() if path.exists() else []
        got = [json.loads(line)["arguments"]["payload"] for line in lines]
        return out, [g for g in got if g.get("case_id") in ids]

    def close(self) -> None:
        self._await(self._cm.__aexit__(None, None, None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    rec = Recorded(tmp_path_factory.mktemp("privacy-properties"))
    yield rec
    rec.close()


def _check(rec: Recorded, policy: str, cases: list[PrivacyCase]) -> None:
    out, got = rec.run(policy, [c.args for c in cases])
    for payload, case in zip(sorted(got, key=lambda g: int(g["case_id"][1:])), cases, strict=False):
        assert fragments_leaked(payload, case.secret, background=case.background) == [], (
            policy,
            case.kind,
            case.args,
            payload,
        )
    results = list(out["results"].values())
    if policy == "refuse":
        assert got == []
        assert all(r["error"].startswith("refused by privacy policy") for r in results)
    elif policy == "route_internal":
        assert got == []
        assert all(r["error"] is None for r in results)
    else:
        assert len(got) == len(cases)
        for r, case in zip(results, cases, strict=True):
            assert r["error"] is None and r["value"]["payload"] == {**case.args, "case_id": r["id"]}


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=privacy_cases())
def test_no_value_or_fragment_reaches_a_recording_server(
    recorded: Recorded, case: PrivacyCase
) -> None:
    for policy in POLICIES:
        _check(recorded, policy, [case])


@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=encoded_cases())
def test_no_encoded_value_reaches_a_recording_server(recorded: Recorded, case: Any) -> None:
    """Values written as a reader decodes them (full-width, zero-width characters, %XX,
    escapes, entities, base64), cut or whole: nothing a reader recovers reaches the server;
    under redact the answer comes back restored exactly."""
    what, secret, args, background = case
    for policy in POLICIES:
        out, got = recorded.run(policy, [args])
        [result] = out["results"].values()
        if policy == "redact":
            [payload] = got
            assert fragments(payload, secret, background) == [], (what, args, payload)
            assert result["value"]["payload"] == {**args, "case_id": result["id"]}
        else:
            assert got == [], (policy, what, args)


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=keyed_cases())
def test_no_value_cut_across_keys_and_values_reaches_a_recording_server(
    recorded: Recorded, case: PrivacyCase
) -> None:
    """A value cut at any position into a key and its value, a value and the next key, or
    two keys, nested at any depth: held back, or sent only as pseudonyms and restored."""
    for policy in POLICIES:
        _check(recorded, policy, [case])


@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=number_cases())
def test_no_card_given_as_numbers_reaches_a_recording_server(
    recorded: Recorded, case: NumberCase
) -> None:
    """A card number's digits as a list of numbers (groups, one digit each, cut anywhere;
    ints or strings) or its groups on separate lines: no piece of it reaches the server."""
    for policy in POLICIES:
        out, got = recorded.run(policy, [case.args])
        [result] = out["results"].values()
        if policy != "redact":
            assert got == [], (policy, case.kind, case.args)
            continue
        [payload] = got
        if case.text:
            assert fragments_leaked(payload, case.text) == [], (case.kind, payload)
        else:
            pieces = set(case.pieces)
            assert [s for s in strings_in(payload) if s in pieces] == [], (case.kind, payload)
        assert result["value"]["payload"] == {**case.args, "case_id": result["id"]}


def test_a_sample_of_the_shaped_corpus_through_the_gate(recorded: Recorded) -> None:
    sample = shaped_corpus(120, seed=23) + shaped_corpus(48, seed=29, held_out=True)
    cases = [
        PrivacyCase(c.kind, c.secrets[0], c.args, ("header", "footer", "chunk: ", " (cont.)"))
        for c in sample
    ]
    for policy in POLICIES:
        _check(recorded, policy, cases)


_DEMO = """
import sys
from hybridmcp.cli import app
try:
    app(["run", "--json", "--db", ":memory:"], standalone_mode=False)
except SystemExit:
    pass
print(sorted({m.split(".")[0] for m in sys.modules if m.startswith(("presidio", "spacy"))}),
      file=sys.stderr)
"""


def test_the_demo_run_never_loads_presidio_or_spacy() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _DEMO],
        capture_output=True,
        text=True,
        timeout=180,
        env={"PYTHONPATH": str(SRC), "PATH": str(Path(sys.executable).parent)},
    )
    assert json.loads(proc.stdout)["status"] == "ok", proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == "[]"
