"""The privacy scan's cost, side by side with another revision's, in one process.

    python -m bench.privacy_scan --ref main            # typical requests, 20 rounds
    python -m bench.privacy_scan --ref main --big 10000

The other revision's ``policy/privacy`` scanning, detection and patterns modules are read with
``git show REF:...`` and loaded beside this tree's under other names (the engines and decoders
are shared), so both scan the same requests in the same process. Typical requests are the
benchmark's time-zone calls (``{"timezone": ...}`` and ``{"source_timezone", "time",
"target_timezone"}``) with varied values; each round clears both detection caches (first
sight) and then scans the same requests again (strings seen before). Rounds alternate which
revision goes first. ``--big N`` also times one request of N short strings of prose and one of
N/4 small records. Prints the ratio this tree / REF.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from hybridmcp.policy import privacy
from hybridmcp.policy.privacy import detection, scanning

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "hybridmcp.policy.privacy"
ZONES = [
    "Europe/Paris", "America/New_York", "Asia/Tokyo", "UTC", "Australia/Sydney",
    "Europe/Berlin", "America/Los_Angeles", "Asia/Kolkata", "Africa/Cairo", "Europe/London",
]  # fmt: skip


def _load_other(ref: str, where: Path) -> tuple[ModuleType, ModuleType]:
    """REF's scanning and detection modules, importing each other under their other names."""
    loaded: dict[str, ModuleType] = {}
    for name in ("patterns", "detection", "scanning"):
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{ref}:src/hybridmcp/policy/privacy/{name}.py"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        for other in ("patterns", "detection"):
            text = text.replace(f"{PACKAGE}.{other} import", f"{PACKAGE}._other_{other} import")
        path = where / f"{name}.py"
        path.write_text(text)
        spec = importlib.util.spec_from_file_location(f"{PACKAGE}._other_{name}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        loaded[name] = module
    return loaded["scanning"], loaded["detection"]


def _typical(rng: random.Random, n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for _ in range(n):
        if rng.random() < 0.5:
            out.append({"timezone": rng.choice(ZONES)})
        else:
            out.append(
                {
                    "source_timezone": rng.choice(ZONES),
                    "time": f"{rng.randrange(24):02d}:{rng.randrange(60):02d}",
                    "target_timezone": rng.choice(ZONES),
                }
            )
    return out


def _clear(other_detection: ModuleType) -> None:
    detection._detect_cached.cache_clear()
    other_detection._detect_cached.cache_clear()
    getattr(scanning, "_CLEAN_WINDOWS", {}).clear()
    gc.collect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default="main", help="the revision to compare with")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--big", type=int, default=0, help="also N strings in one request")
    args = parser.parse_args()
    privacy.engines_ready()
    config = privacy.PrivacyConfig()
    with tempfile.TemporaryDirectory() as tmp:
        other, other_detection = _load_other(args.ref, Path(tmp))
        sides = {"this": scanning, args.ref: other}
        totals = {name: [0.0, 0.0] for name in sides}
        rng = random.Random(7)
        for rnd in range(args.rounds):
            requests = _typical(rng, 300)
            order = list(sides.items()) if rnd % 2 else list(sides.items())[::-1]
            for name, module in order:
                _clear(other_detection)
                for regime in (0, 1):  # first sight, then the same strings again
                    start = time.perf_counter()
                    for request in requests:
                        module.scan(request, config)
                    totals[name][regime] += time.perf_counter() - start
        n = 300 * args.rounds
        for regime, what in enumerate(("first sight", "strings seen before")):
            this, then = totals["this"][regime], totals[args.ref][regime]
            print(
                f"typical requests, {what}: {args.ref} {then / n * 1e6:.1f} us, "
                f"this {this / n * 1e6:.1f} us, this/{args.ref} {this / then:.3f}"
            )
        if args.big:
            words = "the order was shipped to our warehouse and will arrive soon".split()
            lines = [" ".join(rng.choice(words) for _ in range(6)) for _ in range(args.big)]
            records = [
                {"id": i, "name": rng.choice(words), "sku": f"SKU-{rng.randint(10000, 99999)}"}
                for i in range(args.big // 4)
            ]
            big: dict[str, Any] = {"prose": {"items": lines}, "records": records}
            for kind, value in big.items():
                took = {}
                for name, module in sides.items():
                    _clear(other_detection)
                    start = time.perf_counter()
                    module.scan(value, config)
                    took[name] = time.perf_counter() - start
                print(
                    f"{args.big} strings ({kind}): {args.ref} {took[args.ref]:.2f} s, "
                    f"this {took['this']:.2f} s"
                )


if __name__ == "__main__":
    main()
