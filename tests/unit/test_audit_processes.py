"""One audit trail, several processes: the key made once for all, bounded waits for the lock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hybridmcp import audit
from hybridmcp.audit import AuditLog, load_key, verify
from hybridmcp.errors import AuditError

SRC = str(Path(__file__).resolve().parents[2] / "src")

MAKE_KEY = """
import sys
sys.path.insert(0, sys.argv[2])
from hybridmcp.audit import load_key
print("ready", flush=True)
sys.stdin.readline()  # all start together
print(load_key(sys.argv[1]).decode())
"""


def test_processes_making_the_key_at_once_all_get_the_same_whole_key(tmp_path, monkeypatch):
    monkeypatch.delenv(audit.ENV_KEY, raising=False)
    key_file = tmp_path / "trail.jsonl.key"
    procs = [
        subprocess.Popen([sys.executable, "-c", MAKE_KEY, str(key_file), SRC],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]  # fmt: skip
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready", p.stderr
    for p in procs:  # released together, once every one has imported
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    keys = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        keys.append(out.strip())
    assert len(set(keys)) == 1 and len(keys[0]) == 64, keys
    assert load_key(key_file) == keys[0].encode()
    assert [f.name for f in tmp_path.iterdir()] == ["trail.jsonl.key"]  # no draft left


HOLD = """
import fcntl, sys
with open(sys.argv[1], "ab") as f:
    fcntl.flock(f.fileno(), fcntl.LOCK_EX)
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_a_trail_locked_by_another_process_is_waited_for_then_one_line(tmp_path, monkeypatch):
    trail = tmp_path / "audit.jsonl"
    key = b"k" * 32
    with AuditLog(trail, key=key) as log:
        log.append({"kind": "policy_decision"})
    monkeypatch.setattr(audit, "LOCK_TIMEOUT_S", 0.5)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(trail)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with AuditLog(trail, key=key) as log, pytest.raises(AuditError) as err:
            log.append({"kind": "policy_decision"})
        assert "\n" not in str(err.value) and str(trail) in str(err.value)
        assert "locked by another process" in str(err.value)
        with pytest.raises(AuditError, match="locked by another process"):
            verify(trail, key=key)  # a reader waits (shared lock), bounded too
    finally:
        holder.communicate("\n", timeout=30)
    report = verify(trail, key=key)  # nothing was written while it was held
    assert report.ok and report.records == 1
    with AuditLog(trail, key=key) as log:  # released: appends go on
        log.append({"kind": "policy_decision"})
    assert verify(trail, key=key).records == 2
