"""Generate the labelled workloads (``bench/workload/*.json``), deterministically.

    python -m bench.workload.generate          # rewrites workload.json (same seed, same file)
    python -m bench.workload.generate --seed 2 --mix seed2 --order external-late \
        --out bench/workload/workload-seed2.json   # the second workload (see WORKLOADS)

A mix (``MIXES``, or ``group=count,...`` over the default) says how many requests each skill
gets; the order is ``shuffled`` (skills interleave, as in real traffic) or ``external-late``
(shuffled, then every request whose oracle allocation is ``external`` moved into the last part
of the run, among as many others: what was learned early must not decide them unseen). The
seed, mix and order are written into the file, so it can be regenerated from itself.

Every request carries its reference answer (how to check an answer: ``check``) and the oracle's
best allocation with the reason, under the cost model of ``bench/README.md``:

0. a request pinned by the caller to a side (``strategy: external``): that side;
1. a request whose sensitivity is above every external provider's clearance: ``internal``;
2. a ``critical`` request (cross-validation required by the caller): ``hybrid``;
3. otherwise, among the sides whose provider answers this request correctly (known by
   construction: the internal SQL replica is stale for recent rows), the cheapest per call
   (internal providers cost nothing but their latency), ties to the faster; a skill served on
   one side only: that side.

Reference answers are computed here, independently of the providers (arithmetic while the
expression is built, word counts from the generated tokens, SQL on an in-memory copy of the
live database, UTC offsets of time zones without daylight saving time), except for
``text.summarize``, an internal-only skill whose reference is the built-in's own answer when the
workload was generated (a regression reference, said so in ``check``).
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hybridmcp.capabilities.builtin import summarize

HERE = Path(__file__).resolve().parent
WORKLOAD = HERE / "workload.json"
WORKLOAD_SEED2 = HERE / "workload-seed2.json"
SEED = 20261125

MIXES: dict[str, dict[str, int]] = {
    "default": {
        "time.now": 25,
        "time.convert": 25,
        "math.calculate": 30,
        "math.add": 20,
        "everything.get-sum": 10,
        "text.stats": 30,
        "text.stats:pinned": 20,
        "text.echo": 15,
        "text.summarize": 10,
        "json.query": 15,
        "sql.query": 40,
        "sqlite.describe_table": 5,
        "sqlite.list_tables": 5,
    },
    # More requests for some skills (conversions, sums, echoes, SQL), fewer for others.
    "seed2": {
        "time.now": 10,
        "time.convert": 40,
        "math.calculate": 15,
        "math.add": 35,
        "everything.get-sum": 5,
        "text.stats": 20,
        "text.stats:pinned": 10,
        "text.echo": 30,
        "text.summarize": 5,
        "json.query": 10,
        "sql.query": 60,
        "sqlite.describe_table": 8,
        "sqlite.list_tables": 4,
    },
}
ORDERS = ("shuffled", "external-late")
WORKLOADS = {
    WORKLOAD: {"seed": SEED, "mix": "default", "order": "shuffled"},
    WORKLOAD_SEED2: {"seed": 2, "mix": "seed2", "order": "external-late"},
}
"""The committed workloads and the arguments that write each."""

NO_DST_ZONES = [
    "UTC",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Asia/Shanghai",
    "Asia/Dubai",
    "Africa/Nairobi",
    "America/Phoenix",
    "Asia/Singapore",
    "Australia/Brisbane",
    "Asia/Kathmandu",
    "Asia/Seoul",
    "America/Bogota",
    "Africa/Lagos",
    "Asia/Jakarta",
    "America/Lima",
    "Pacific/Honolulu",
]
WORDS = (
    "river stone market ledger signal harbor copper meadow engine lantern orbit canvas "
    "thunder velvet quarry beacon garden silver tunnel window falcon rhythm summit timber"
).split()
TOPICS = ["invoice", "shipment", "outage", "forecast", "audit", "release"]

SCHEMA = [
    "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, category TEXT, price REAL, "
    "stock INTEGER)",
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, product_id INTEGER, qty INTEGER, day INTEGER)",
    "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, country TEXT, tier TEXT)",
]
CATEGORIES = ["tools", "garden", "kitchen", "office"]
RECENT_DAY = 25
"""Orders from this day on are in the live database only (the internal replica predates them)."""


def database(rng: random.Random) -> dict[str, list[str]]:
    """SQL statements: ``base`` (in the replica and the live database) and ``recent`` (live)."""
    base, recent = list(SCHEMA), []
    for i in range(1, 25):
        price = round(rng.uniform(2, 120), 2)
        base.append(
            f"INSERT INTO products VALUES ({i}, '{rng.choice(WORDS)}-{i}', "
            f"'{CATEGORIES[i % 4]}', {price}, {rng.randint(0, 80)})"
        )
    for i in range(1, 16):
        country = rng.choice(["FR", "DE", "JP", "BR", "KE", "IN"])
        tier = rng.choice(["gold", "silver", "basic"])
        base.append(f"INSERT INTO customers VALUES ({i}, 'customer-{i}', '{country}', '{tier}')")
    for i in range(1, 121):
        day = rng.randint(1, 30)
        row = f"INSERT INTO orders VALUES ({i}, {rng.randint(1, 24)}, {rng.randint(1, 9)}, {day})"
        (recent if day >= RECENT_DAY else base).append(row)
    return {"base": base, "recent": recent}


def sql_rows(statements: list[str], query: str) -> str:
    """A query's answer as ``mcp-server-sqlite`` renders it: ``str`` of a list of row dicts."""
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    for s in statements:
        conn.execute(s)
    rows = [dict(r) for r in conn.execute(query).fetchall()]
    conn.close()
    return str(rows)


def request(
    rid: str,
    skill: str,
    args: dict[str, Any],
    reference: Any,
    check: str,
    oracle: str,
    reason: str,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": rid,
        "skill": skill,
        "args": args,
        **extra,
        "reference": reference,
        "check": check,
        "oracle": {"allocation": oracle, "reason": reason},
    }


CHEAPER = "both sides answer correctly; internal costs nothing per call"
PINNED = "the caller pinned the external side (strategy: external)"


def both_sides(
    rid: str, skill: str, args: dict[str, Any], reference: Any, check: str, *, critical: bool
) -> dict[str, Any]:
    if critical:
        return request(
            rid,
            skill,
            args,
            reference,
            check,
            "hybrid",
            "critical: cross-validation required",
            critical=True,
        )
    return request(rid, skill, args, reference, check, "internal", CHEAPER)


def time_requests(rng: random.Random, mix: Mapping[str, int]) -> list[dict[str, Any]]:
    out = []
    for i in range(mix["time.now"]):
        zone = NO_DST_ZONES[i % len(NO_DST_ZONES)]
        ref = {"timezone": zone, "is_dst": False}
        out.append(
            both_sides(
                f"now-{i}", "time.now", {"timezone": zone}, ref, "time_now", critical=i % 6 == 5
            )
        )
    for i in range(mix["time.convert"]):
        src, dst = rng.sample(NO_DST_ZONES, 2)
        hh, mm = rng.randint(0, 23), rng.choice([0, 15, 30, 45])
        day = datetime(2026, 1, 15, hh, mm, tzinfo=ZoneInfo(src))
        target = day.astimezone(ZoneInfo(dst))
        hours = (target.utcoffset() or timedelta()) - (day.utcoffset() or timedelta())
        h = hours.total_seconds() / 3600
        diff = f"{h:+.1f}h" if h.is_integer() else f"{h:+.2f}".rstrip("0").rstrip(".") + "h"
        ref = {"target_time": target.strftime("%H:%M"), "time_difference": diff}
        args = {"source_timezone": src, "time": f"{hh:02d}:{mm:02d}", "target_timezone": dst}
        out.append(
            both_sides(
                f"convert-{i}", "time.convert", args, ref, "time_convert", critical=i % 8 == 7
            )
        )
    return out


def expression(rng: random.Random) -> tuple[str, int | float]:
    a, b, c, d = (rng.randint(1, 999) for _ in range(4))
    forms = [
        (f"({a} + {b}) * {c % 20 + 1}", (a + b) * (c % 20 + 1)),
        (f"{a} * {b} - {c}", a * b - c),
        (f"({a} - {b}) * ({c} + {d})", (a - b) * (c + d)),
        (f"{a} ** 2 + {b}", a**2 + b),
        (f"({a} + {b} + {c}) // {d % 9 + 1}", (a + b + c) // (d % 9 + 1)),
        (f"{b} - {a} + {c} % {d % 7 + 2}", b - a + c % (d % 7 + 2)),
    ]
    return rng.choice(forms)


def math_requests(rng: random.Random, mix: Mapping[str, int]) -> list[dict[str, Any]]:
    out = []
    for i in range(mix["math.calculate"]):
        expr, value = expression(rng)
        out.append(
            both_sides(
                f"calc-{i}",
                "math.calculate",
                {"expression": expr},
                {"value": value},
                "numeric_value",
                critical=i % 10 == 9,
            )
        )
    for i in range(mix["math.add"]):
        a, b = rng.randint(-500, 999), rng.randint(0, 999)
        ref = f"The sum of {a} and {b} is {a + b}."
        out.append(
            both_sides(f"add-{i}", "math.add", {"a": a, "b": b}, ref, "exact", critical=i % 10 == 9)
        )
    for i in range(mix["everything.get-sum"]):
        a, b = rng.randint(0, 999), rng.randint(0, 999)
        ref = f"The sum of {a} and {b} is {a + b}."
        out.append(
            request(
                f"everything-sum-{i}",
                "everything.get-sum",
                {"a": a, "b": b},
                ref,
                "exact",
                "external",
                "served by the external side only",
            )
        )
    return out


def text(rng: random.Random, sentences: int, topic: str | None = None) -> tuple[str, int]:
    parts, words = [], 0
    for s in range(sentences):
        n = rng.randint(4, 11)
        chosen = [rng.choice(WORDS) for _ in range(n)]
        if topic and s % 2 == 0:
            chosen[rng.randrange(n)] = topic
        words += n
        parts.append(" ".join(chosen).capitalize() + ".")
    return " ".join(parts), words


def text_requests(rng: random.Random, mix: Mapping[str, int]) -> list[dict[str, Any]]:
    out = []
    for i in range(mix["text.stats"]):
        body, words = text(rng, rng.randint(1, 6))
        sentences = body.count(".")
        ref = {"words": words, "sentences": sentences}
        extra = {"sensitivity": "confidential"} if i % 10 == 3 else {}
        if extra:
            out.append(
                request(
                    f"stats-{i}",
                    "text.stats",
                    {"text": body},
                    ref,
                    "fields",
                    "internal",
                    "confidential: no external provider is cleared",
                    **extra,
                )
            )
        else:
            out.append(
                both_sides(
                    f"stats-{i}", "text.stats", {"text": body}, ref, "fields", critical=i % 10 == 9
                )
            )
    # The caller pins the external service; it fails 35% of its calls.
    for i in range(mix["text.stats:pinned"]):
        body, words = text(rng, rng.randint(1, 6))
        ref = {"words": words, "sentences": body.count(".")}
        out.append(
            request(
                f"stats-pinned-{i}",
                "text.stats",
                {"text": body},
                ref,
                "fields",
                "external",
                PINNED,
                strategy="external",
            )
        )
    for i in range(mix["text.echo"]):
        message = " ".join(rng.sample(WORDS, rng.randint(1, 5)))
        out.append(
            both_sides(
                f"echo-{i}",
                "text.echo",
                {"message": message},
                f"Echo: {message}",
                "exact",
                critical=i % 10 == 9,
            )
        )
    for i in range(mix["text.summarize"]):
        body, _ = text(rng, rng.randint(4, 8), topic=rng.choice(TOPICS))
        ref = summarize(body, 2)["summary"]
        out.append(
            request(
                f"summary-{i}",
                "text.summarize",
                {"text": body, "max_sentences": 2},
                {"summary": ref},
                "fields:regression",
                "internal",
                "served by the internal side only",
            )
        )
    return out


def json_requests(rng: random.Random, mix: Mapping[str, int]) -> list[dict[str, Any]]:
    out = []
    for i in range(mix["json.query"]):
        items = [
            {
                "sku": f"{rng.choice(WORDS)}-{k}",
                "qty": rng.randint(0, 40),
                "tags": rng.sample(TOPICS, 2),
            }
            for k in range(rng.randint(2, 5))
        ]
        doc = {"order": {"id": 1000 + i, "items": items, "owner": {"name": f"team-{i}"}}}
        k = rng.randrange(len(items))
        path, value = rng.choice(
            [
                (f"$.order.items[{k}].qty", items[k]["qty"]),
                ("$.order.items[*].sku", [it["sku"] for it in items]),
                ("$.order.owner.name", f"team-{i}"),
                (f"$.order.items[{k}].tags[1]", items[k]["tags"][1]),
            ]
        )
        out.append(
            request(
                f"json-{i}",
                "json.query",
                {"data": doc, "path": path},
                {"result": value},
                "exact",
                "internal",
                "served by the internal side only",
            )
        )
    return out


def sql_requests(
    rng: random.Random, db: dict[str, list[str]], mix: Mapping[str, int]
) -> list[dict[str, Any]]:
    live = db["base"] + db["recent"]
    out = []
    old = [
        "SELECT name, price FROM products WHERE category = '{c}' ORDER BY id",
        "SELECT COUNT(*) AS n, ROUND(AVG(price), 2) AS avg_price FROM products "
        "WHERE category = '{c}'",
        "SELECT id, name FROM products WHERE stock < {s} ORDER BY id",
        "SELECT category, SUM(stock) AS stock FROM products GROUP BY category ORDER BY category",
    ]
    recent = [
        "SELECT COUNT(*) AS n, SUM(qty) AS units FROM orders WHERE day >= {d}",
        "SELECT product_id, SUM(qty) AS units FROM orders WHERE day >= {d} "
        "GROUP BY product_id ORDER BY units DESC, product_id LIMIT 3",
        "SELECT MAX(day) AS last_day FROM orders",
        "SELECT COUNT(*) AS n FROM orders WHERE product_id = {p}",
    ]
    for i in range(mix["sql.query"]):
        fresh = i % 2 == 1
        template = rng.choice(recent if fresh else old)
        query = template.format(
            c=rng.choice(CATEGORIES),
            s=rng.randint(10, 60),
            d=rng.randint(RECENT_DAY - 4, 29),
            p=rng.randint(1, 24),
        )
        reference = sql_rows(live, query)
        stale = sql_rows(db["base"], query) != reference
        confidential = not stale and i % 10 == 4
        args = {"query": query}
        if confidential:
            out.append(
                request(
                    f"sql-{i}",
                    "sql.query",
                    args,
                    reference,
                    "exact",
                    "internal",
                    "confidential: no external provider is cleared",
                    sensitivity="confidential",
                )
            )
        elif stale:
            out.append(
                request(
                    f"sql-{i}",
                    "sql.query",
                    args,
                    reference,
                    "exact",
                    "external",
                    "the internal replica is stale for these rows",
                    fresh_data=True,
                )
            )
        else:
            out.append(
                both_sides(f"sql-{i}", "sql.query", args, reference, "exact", critical=i % 10 == 8)
            )
    tables = ["products", "orders", "customers"]
    for i in range(mix["sqlite.describe_table"]):
        table = tables[i % 3]
        ref = sql_rows(live, f"PRAGMA table_info({table})")
        out.append(
            request(
                f"describe-{i}",
                "sqlite.describe_table",
                {"table_name": table},
                ref,
                "exact",
                "external",
                "served by the external side only",
            )
        )
    for i in range(mix["sqlite.list_tables"]):
        ref = sql_rows(live, "SELECT name FROM sqlite_master WHERE type='table'")
        out.append(
            request(
                f"tables-{i}",
                "sqlite.list_tables",
                {},
                ref,
                "exact",
                "external",
                "served by the external side only",
            )
        )
    return out


def mix_counts(mix: str) -> dict[str, int]:
    """A named mix (``MIXES``), or ``group=count,...`` overriding the default mix."""
    if mix in MIXES:
        return dict(MIXES[mix])
    counts = dict(MIXES["default"])
    for part in filter(None, mix.split(",")):
        group, _, count = part.partition("=")
        if group not in counts or not count.isdigit():
            raise SystemExit(
                f"--mix {mix!r}: {part!r} is not group=count with a group of {sorted(counts)} "
                f"or a mix of {sorted(MIXES)}"
            )
        counts[group] = int(count)
    return counts


def order(rng: random.Random, requests: list[dict[str, Any]], how: str) -> list[dict[str, Any]]:
    """Shuffle the requests (skills interleave, as in real traffic); ``external-late`` then
    moves those whose oracle allocation is external into the last part of the run, shuffled
    among as many of the others."""
    rng.shuffle(requests)
    if how == "shuffled":
        return requests
    if how != "external-late":
        raise SystemExit(f"--order {how!r}: expected one of {ORDERS}")
    late = [r for r in requests if r["oracle"]["allocation"] == "external"]
    rest = [r for r in requests if r["oracle"]["allocation"] != "external"]
    cut = max(0, len(rest) - len(late))
    tail = rest[cut:] + late
    rng.shuffle(tail)
    return rest[:cut] + tail


def generate(seed: int = SEED, mix: str = "default", how: str = "shuffled") -> dict[str, Any]:
    rng = random.Random(seed)
    counts = mix_counts(mix)
    db = database(rng)
    requests = (
        time_requests(rng, counts)
        + math_requests(rng, counts)
        + text_requests(rng, counts)
        + json_requests(rng, counts)
        + sql_requests(rng, db, counts)
    )
    data: dict[str, Any] = {
        "description": "hybridmcp's labelled workload; see bench/README.md (generated by "
        "python -m bench.workload.generate)",
        "seed": seed,
    }
    if (mix, how) != ("default", "shuffled"):
        data |= {"mix": mix, "order": how, "counts": counts}
    return data | {"database": db, "requests": order(rng, requests, how)}


def regenerate(committed: Mapping[str, Any]) -> dict[str, Any]:
    """What the generator writes for a committed workload's own seed, mix and order."""
    return generate(
        committed["seed"], committed.get("mix", "default"), committed.get("order", "shuffled")
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.workload.generate", description=__doc__)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--mix", default="default", help=f"one of {sorted(MIXES)}, or group=count,...")
    p.add_argument("--order", default="shuffled", choices=ORDERS)
    p.add_argument("--out", type=Path, default=WORKLOAD)
    args = p.parse_args(argv)
    data = generate(args.seed, args.mix, args.order)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    oracle: dict[str, int] = {}
    for r in data["requests"]:
        oracle[r["oracle"]["allocation"]] = oracle.get(r["oracle"]["allocation"], 0) + 1
    print(f"wrote {args.out}: {len(data['requests'])} requests, oracle {oracle}")


if __name__ == "__main__":
    main()
