"""A generated corpus of request arguments laced with known secrets: the privacy proof's input.

The proof is simple: run every case through the gate (or through ``privacy.redact``), collect
what would reach the external server, and check with :func:`leaked` that none of the case's
``secrets`` survived. The corpus is deterministic for a seed and needs no network and no faker:
values are built from small word lists with ``random.Random(seed)``, and every checksum a real
value carries (Luhn, IBAN mod-97) is computed so that a validating detector cannot reject them
as fakes.

Secrets are listed as the exact raw substrings an external server must never see. Where a
detector could plausibly remove only part of a value, the parts are listed too: each half of a
card number split over two fields, each body line of a PEM key, the signature of a JWT.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["KINDS", "CanaryCase", "canary_corpus", "leaked", "strings_in"]


@dataclass(frozen=True)
class CanaryCase:
    """One request's arguments and the raw values in them that must not leave the process."""

    id: str
    kind: str
    form: str
    args: dict[str, Any]
    secrets: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.secrets


# --------------------------------------------------------------------------------------------
# Building blocks

_FIRST = [
    "alice", "bob", "carol", "dmitri", "erin", "farah", "giulia", "hiro", "ines", "jamal",
    "kenji", "lena", "mateo", "nadia", "oscar", "priya", "quentin", "rosa", "sven", "tariq",
]  # fmt: skip
_LAST = [
    "smith", "garcia", "mueller", "dubois", "rossi", "tanaka", "kowalski", "okafor", "novak",
    "haddad", "lindqvist", "oconnor", "fernandes", "schmidt", "kim", "patel",
]  # fmt: skip
_DOMAINS = [
    "example.com", "acme.io", "mail.co.uk", "corp.example.org", "uni-heidelberg.de",
    "post.fr", "gmail.com", "outlook.com", "company.net", "startup.ai", "web.de",
]  # fmt: skip
_US_AREAS = [212, 305, 312, 415, 512, 617, 646, 702, 713, 206, 303, 404, 503, 619, 718]
_B64URL = string.ascii_letters + string.digits + "-_"
_ALNUM = string.ascii_letters + string.digits
_UPPER_DIGITS = string.ascii_uppercase + string.digits


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _chars(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _luhn_complete(prefix_and_body: str) -> str:
    """Append the check digit that makes the number pass Luhn."""
    total = 0
    for i, ch in enumerate(reversed(prefix_and_body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return prefix_and_body + str((10 - total % 10) % 10)


def _iban_check(country: str, bban: str) -> str:
    rearranged = bban + country + "00"
    number = "".join(str(int(c, 36)) for c in rearranged)
    return f"{98 - int(number) % 97:02d}"


def _group(text: str, size: int = 4, sep: str = " ") -> str:
    return sep.join(text[i : i + size] for i in range(0, len(text), size))


# --------------------------------------------------------------------------------------------
# Value generators: each returns (value, secrets, context word for a field name)

Value = tuple[Any, list[str], str]


def _email(rng: random.Random) -> Value:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    local = rng.choice([f"{first}.{last}", f"{first}_{last}", f"{first}{last[0]}", first])
    if rng.random() < 0.3:
        local += str(rng.randint(1, 99))
    email = f"{local}@{rng.choice(_DOMAINS)}"
    return email, [email], "email"


def _phone(rng: random.Random) -> Value:
    style = rng.choice(["us", "us", "uk", "de", "fr", "in", "e164"])
    if style in ("us", "e164"):
        area = rng.choice(_US_AREAS)
        exchange = rng.choice([n for n in range(201, 1000) if n % 100 != 11 and n != 555])
        line = _digits(rng, 4)
        formats = [
            f"({area}) {exchange}-{line}",
            f"{area}-{exchange}-{line}",
            f"{area}.{exchange}.{line}",
            f"+1 {area} {exchange} {line}",
            f"+1-{area}-{exchange}-{line}",
        ]
        phone = f"+1{area}{exchange}{line}" if style == "e164" else rng.choice(formats)
    elif style == "uk":
        if rng.random() < 0.5:
            phone = f"07{rng.choice('4579')}{_digits(rng, 2)} {_digits(rng, 6)}"
        else:
            phone = f"+44 20 {rng.choice('78')}{_digits(rng, 3)} {_digits(rng, 4)}"
    elif style == "de":
        phone = rng.choice(
            [
                f"030 {rng.randint(1, 9)}{_digits(rng, 7)}",
                f"+49 30 {rng.randint(1, 9)}{_digits(rng, 7)}",
                f"01{rng.choice(['51', '60', '70', '71', '76'])} {_digits(rng, 8)}",
            ]
        )
    elif style == "fr":
        pairs = " ".join(_digits(rng, 2) for _ in range(3))
        phone = rng.choice(
            # 06 9x belongs to the overseas departments' numbering plans, not France's.
            [f"06 {rng.randint(10, 89)} {pairs}", f"+33 6 {rng.randint(10, 89)} {pairs}"]
        )
    else:
        phone = f"+91 {rng.choice('6789')}{_digits(rng, 4)} {_digits(rng, 5)}"
    return phone, [phone], "phone"


def _card_number(rng: random.Random) -> tuple[str, list[int]]:
    network = rng.choice(["visa", "visa", "mastercard", "amex", "discover"])
    if network == "visa":
        return _luhn_complete("4" + _digits(rng, 14)), [4, 4, 4, 4]
    if network == "mastercard":
        return _luhn_complete(str(rng.randint(51, 55)) + _digits(rng, 13)), [4, 4, 4, 4]
    if network == "amex":
        return _luhn_complete(rng.choice(["34", "37"]) + _digits(rng, 12)), [4, 6, 5]
    return _luhn_complete("6011" + _digits(rng, 11)), [4, 4, 4, 4]


def _formatted(number: str, groups: list[int], sep: str) -> str:
    parts, pos = [], 0
    for size in groups:
        parts.append(number[pos : pos + size])
        pos += size
    return sep.join(parts)


def _card(rng: random.Random) -> Value:
    number, groups = _card_number(rng)
    style = rng.choice(["plain", "spaces", "dashes", "int"])
    if style == "int":
        return int(number), [number], "card"
    text = {"plain": number, "spaces": _formatted(number, groups, " ")}.get(
        style, _formatted(number, groups, "-")
    )
    return text, [text], "card"


def _iban(rng: random.Random) -> Value:
    country = rng.choice(["DE", "GB", "FR", "ES", "NL", "IT"])
    if country == "DE":
        bban = _digits(rng, 18)
    elif country == "GB":
        bban = _chars(rng, string.ascii_uppercase, 4) + _digits(rng, 14)
    elif country == "FR":
        bban = _digits(rng, 10) + _chars(rng, _UPPER_DIGITS, 11) + _digits(rng, 2)
    elif country == "ES":
        bban = _digits(rng, 20)
    elif country == "NL":
        bban = _chars(rng, string.ascii_uppercase, 4) + _digits(rng, 10)
    else:
        bban = (
            rng.choice(string.ascii_uppercase) + _digits(rng, 10) + _chars(rng, _UPPER_DIGITS, 12)
        )
    iban = country + _iban_check(country, bban) + bban
    text = _group(iban) if rng.random() < 0.5 else iban
    return text, [text], "iban"


def _ssn(rng: random.Random) -> Value:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    ssn = f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
    if rng.random() < 0.3:
        ssn = ssn.replace("-", " ")
    return ssn, [ssn], "ssn"


def _ip(rng: random.Random) -> Value:
    if rng.random() < 0.6:
        ip = ".".join(str(rng.randint(1, 254)) for _ in range(4))
    else:
        groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
        ip = rng.choice(
            [
                ":".join(groups),
                f"2001:db8::{groups[0]}:{groups[1]}",
                f"fe80::{groups[2]}:{groups[3]}:{groups[4]}:{groups[5]}",
            ]
        )
    return ip, [ip], "ip"


def _aws(rng: random.Random) -> Value:
    key_id = rng.choice(["AKIA", "ASIA"]) + _chars(rng, _UPPER_DIGITS, 16)
    if rng.random() < 0.5:
        return key_id, [key_id], "aws_access_key_id"
    secret = _chars(rng, _ALNUM + "/+", 40)
    text = f"aws_access_key_id={key_id}\naws_secret_access_key={secret}"
    return text, [key_id, secret], "aws_credentials"


def _github(rng: random.Random) -> Value:
    if rng.random() < 0.7:
        token = rng.choice(["ghp_", "gho_", "ghs_"]) + _chars(rng, _ALNUM, 36)
    else:
        token = "github_pat_" + _chars(rng, _ALNUM, 22) + "_" + _chars(rng, _ALNUM, 59)
    return token, [token], "github_token"


def _slack(rng: random.Random) -> Value:
    prefix = rng.choice(["xoxb", "xoxp", "xoxa"])
    token = f"{prefix}-{_digits(rng, 12)}-{_digits(rng, 13)}-{_chars(rng, _ALNUM, 24)}"
    return token, [token], "slack_token"


def _openai(rng: random.Random) -> Value:
    if rng.random() < 0.7:
        key = "sk-proj-" + _chars(rng, _B64URL, rng.randint(48, 80)) + _chars(rng, _ALNUM, 4)
    else:
        key = "sk-" + _chars(rng, _ALNUM, 20) + "T3BlbkFJ" + _chars(rng, _ALNUM, 20)
    return key, [key], "openai_api_key"


def _jwt(rng: random.Random) -> Value:
    header = {"alg": rng.choice(["HS256", "RS256"]), "typ": "JWT"}
    payload = {
        "sub": _digits(rng, 10),
        "name": f"{rng.choice(_FIRST).title()} {rng.choice(_LAST).title()}",
        "iat": rng.randint(1_600_000_000, 1_800_000_000),
    }
    sig = _b64url(bytes(rng.randrange(256) for _ in range(32)))
    parts = [_b64url(json.dumps(p, separators=(",", ":")).encode()) for p in (header, payload)]
    token = ".".join([*parts, sig])
    return token, [token, sig], "auth_token"


def _pem(rng: random.Random) -> Value:
    kind = rng.choice(["RSA ", "EC ", "OPENSSH ", ""])
    body = base64.b64encode(bytes(rng.randrange(256) for _ in range(rng.randint(180, 400))))
    lines = [body[i : i + 64].decode() for i in range(0, len(body), 64)]
    block = f"-----BEGIN {kind}PRIVATE KEY-----\n" + "\n".join(lines)
    block += f"\n-----END {kind}PRIVATE KEY-----"
    return block, [block, *[line for line in lines if len(line) >= 16]], "private_key"


def _password_value(rng: random.Random) -> str:
    while True:
        pw = _chars(rng, _ALNUM, rng.randint(6, 10)) + rng.choice("!@#%^&*_") + _digits(rng, 2)
        if any(c.isalpha() for c in pw):
            return pw


def _password(rng: random.Random) -> Value:
    pw = _password_value(rng)
    text = rng.choice(
        [
            f"password={pw}",
            f"PASSWORD: {pw}",
            f'db_password = "{pw}"',
            f"pwd={pw}",
            f"mysql -u admin --password={pw} -h db.internal",
            f"DATABASE_URL=postgres://app:{pw.replace('@', '').replace('#', '')}@db:5432/app",
        ]
    )
    secret = pw
    if text.startswith("DATABASE_URL"):
        secret = pw.replace("@", "").replace("#", "")
    return text, [secret], "config"


_GENERATORS: dict[str, Callable[[random.Random], Value]] = {
    "email": _email,
    "phone": _phone,
    "credit_card": _card,
    "iban": _iban,
    "us_ssn": _ssn,
    "ip_address": _ip,
    "aws_key": _aws,
    "github_token": _github,
    "slack_token": _slack,
    "openai_key": _openai,
    "jwt": _jwt,
    "private_key": _pem,
    "password": _password,
}
KINDS: tuple[str, ...] = (
    *_GENERATORS,
    "password_field",
    "split_card",
    "split_ssn",
    "mixed",
    "clean",
)

# --------------------------------------------------------------------------------------------
# Placing a value in a request

_TEMPLATES = [
    "Please contact {v} about the invoice.",
    "Customer wrote: my details are {v}, thanks!",
    "log line: user_ref={v} action=login status=ok",
    "Hi team,\nthe value you asked for is {v}\nRegards",
    "{v}",
    "Forwarded message -- original: {v} -- end",
    "Can you check whether {v} is still valid?",
]
_NEUTRAL_KEYS = ["value", "data", "input", "q", "field_3", "payload", "arg"]


def _place(rng: random.Random, value: Any, hint: str) -> tuple[str, dict[str, Any]]:
    form = rng.choice(["field", "nested", "text", "list", "text"])
    key = hint if rng.random() < 0.5 else rng.choice(_NEUTRAL_KEYS)
    if form == "field":
        return form, {key: value, "request_id": f"req-{rng.randint(1000, 9999)}"}
    if form == "nested":
        return form, {"request": {"customer": {"profile": {key: value}}, "priority": "normal"}}
    if form == "list":
        return form, {"items": ["first note", value, "last note"], "limit": 10}
    text = rng.choice(_TEMPLATES).format(v=value)
    return form, {"message": text, "channel": rng.choice(["email", "chat", "ticket"])}


def _split_card(rng: random.Random) -> tuple[str, dict[str, Any], list[str]]:
    number, _ = _card_number(rng)
    cut = 8 if len(number) == 16 else 7
    left, right = number[:cut], number[cut:]
    if rng.random() < 0.5:
        left, right = _group(left), _group(right)
    args = {"payment": {"card_first_part": left, "card_second_part": right, "exp": "09/29"}}
    return "split", args, [left, right]


def _split_ssn(rng: random.Random) -> tuple[str, dict[str, Any], list[str]]:
    ssn, _, _ = _ssn(rng)
    sep = "-" if "-" in ssn else " "
    area, group, serial = ssn.split(sep)
    args = {"applicant": {"ssn_prefix": f"{area}{sep}{group}", "ssn_suffix": serial}}
    return "split", args, [f"{area}{sep}{group}", serial]


def _password_field(rng: random.Random) -> tuple[str, dict[str, Any], list[str]]:
    pw = _password_value(rng)
    key = rng.choice(["password", "db_password", "api_token", "client_secret", "passphrase"])
    args = {"connection": {"host": "db.internal", "user": "app", key: pw}}
    return "key", args, [pw]


def _mixed(rng: random.Random) -> tuple[str, dict[str, Any], list[str]]:
    kinds = rng.sample(sorted(_GENERATORS), 3)
    args: dict[str, Any] = {"ticket": rng.randint(10_000, 99_999), "fields": {}}
    secrets: list[str] = []
    sentences = []
    for i, kind in enumerate(kinds):
        value, found, hint = _GENERATORS[kind](rng)
        secrets.extend(found)
        if i == 0:
            args["fields"][hint] = value
        else:
            sentences.append(f"{hint.replace('_', ' ')}: {value}")
    args["notes"] = "Context for the agent. " + " | ".join(sentences)
    return "mixed", args, secrets


def _clean(rng: random.Random) -> tuple[str, dict[str, Any], list[str]]:
    """Ordinary tool arguments, some deliberately close to sensitive shapes."""
    sha = _chars(rng, "0123456789abcdef", 40)
    choices: list[dict[str, Any]] = [
        {"query": f"weather in {rng.choice(['Paris', 'Lyon', 'Osaka', 'Lima'])} tomorrow"},
        {"timezone": rng.choice(["Europe/Berlin", "America/New_York"]), "time": "14:30"},
        {"repo_path": "/srv/repos/hybridmcp", "rev": sha, "max_count": rng.randint(5, 50)},
        {
            "request_id": f"{_chars(rng, '0123456789abcdef', 8)}-4a1b-4c2d-8e3f-"
            f"{_chars(rng, '0123456789abcdef', 12)}"
        },
        {"url": "https://docs.python.org/3/library/json.html", "max_length": 5000},
        {
            "sql": f"SELECT id, name FROM users WHERE created_at > '2024-0{rng.randint(1, 9)}-01'"
            f" LIMIT {rng.randint(10, 99)}"
        },
        {
            "version": f"{rng.randint(1, 3)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}",
            "build": rng.randint(20240101, 20241231),
        },
        {"price": round(rng.uniform(1, 2000), 2), "currency": "EUR", "quantity": rng.randint(1, 9)},
        {
            "text": f"Summarize the quarterly report: revenue grew {rng.randint(2, 30)}% to "
            f"{rng.randint(1, 9)}.{rng.randint(0, 9)} million."
        },
        {"coords": [round(rng.uniform(-90, 90), 4), round(rng.uniform(-180, 180), 4)]},
        {"color": f"#{_chars(rng, '0123456789abcdef', 6)}", "opacity": 0.8},
        {"epoch": rng.randint(1_600_000_000, 1_800_000_000), "unit": "s"},
        {"max_tokens": rng.choice([256, 512, 1024]), "temperature": 0.2},
        {"order": f"ORD-2024-{_digits(rng, 6)}", "status": "shipped"},
        {"zip": f"{rng.randint(10000, 99999)}", "city": "Berlin"},
        {"checksum": _chars(rng, "0123456789abcdef", 64), "algorithm": "sha256"},
        {"host": "localhost", "port": rng.choice([5432, 8080, 6379])},
        {"isbn": "978-3-16-148410-0", "title": "Distributed Systems"},
        {"path": "src/hybridmcp/policy/privacy.py", "line": rng.randint(1, 900)},
        {"expression": f"{rng.randint(100, 999)} * {rng.randint(100, 999)} + 17"},
        {"date": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}", "days": 7},
        {"message": "Deploy finished in 42 s; 3 of 3 replicas healthy. Next run at 02:00 UTC."},
    ]
    return "clean", rng.choice(choices), []


_COMPOSED: dict[str, Callable[[random.Random], tuple[str, dict[str, Any], list[str]]]] = {
    "password_field": _password_field,
    "split_card": _split_card,
    "split_ssn": _split_ssn,
    "mixed": _mixed,
    "clean": _clean,
}


def canary_corpus(n: int = 600, seed: int = 0) -> list[CanaryCase]:
    """``n`` cases, the same for the same seed: about a tenth clean, the rest cycling through
    :data:`KINDS` in varied forms (a field, nested objects, a list, free text, split fields)."""
    rng = random.Random(seed)
    n_clean = max(1, n // 10) if n >= 10 else 0
    sensitive_kinds = [k for k in KINDS if k != "clean"]
    plan = [sensitive_kinds[i % len(sensitive_kinds)] for i in range(n - n_clean)]
    plan += ["clean"] * n_clean
    rng.shuffle(plan)
    cases = []
    for i, kind in enumerate(plan):
        if kind in _COMPOSED:
            form, args, secrets = _COMPOSED[kind](rng)
        else:
            value, secrets, hint = _GENERATORS[kind](rng)
            form, args = _place(rng, value, hint)
        cases.append(CanaryCase(f"c{i:04d}", kind, form, args, secrets))
    return cases


# --------------------------------------------------------------------------------------------
# Checking what leaked


def strings_in(value: Any) -> Iterable[str]:
    """Every string an external server would see in ``value``: leaves, keys, numbers as text."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield str(k)
            yield from strings_in(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from strings_in(v)
    elif isinstance(value, str):
        yield value
    elif value is not None and not isinstance(value, bool):
        yield str(value)


def leaked(value: Any, secrets: Iterable[str]) -> list[str]:
    """The secrets still present anywhere in ``value`` (empty when redaction held)."""
    texts = list(strings_in(value))
    return [s for s in secrets if any(s in t for t in texts)]


# --------------------------------------------------------------------------------------------
# The shaped corpus: every kind in every shape, values split at any position

SHAPE_KINDS: tuple[str, ...] = (
    "email", "phone", "credit_card", "iban", "us_ssn", "ip_address", "aws_key",
    "github_token", "slack_token", "openai_key", "jwt", "password",
)  # fmt: skip
"""Kinds of the shaped corpus: one raw value each (a password inside its ``password=``)."""

_SURROUNDINGS: tuple[tuple[str, str], ...] = (
    ("", ""),
    ("Please contact ", " about the invoice."),
    ("log: user_ref=", " action=login status=ok"),
    ("Hi team,\nthe value is ", "\nRegards"),
    ('{"note": "', '"}'),
    ("<td>", "</td>"),
)


def shaped_value(kind: str, rng: random.Random) -> tuple[str, str]:
    """A raw value of ``kind`` as text, and the part of it that must never leave (for a
    password, the text carries ``password=`` and the secret is what follows)."""
    if kind == "password":
        pw = _password_value(rng)
        return f"password={pw}", pw
    if kind == "aws_key":
        key = rng.choice(["AKIA", "ASIA"]) + _chars(rng, _UPPER_DIGITS, 16)
        return key, key
    value, found, _ = _GENERATORS[kind](rng)
    text = str(value)
    return text, found[0] if kind != "credit_card" else text


def split_fields(text: str, cut: int, before: str = "", after: str = "") -> tuple[str, str]:
    """``before + text + after`` cut in two at ``len(before) + cut``."""
    whole = before + text + after
    at = len(before) + cut
    return whole[:at], whole[at:]


def _shape_field(rng: random.Random, v: str) -> dict[str, Any]:
    return {"value": v, "request_id": f"req-{rng.randint(1000, 9999)}"}


def _shape_text(rng: random.Random, v: str) -> dict[str, Any]:
    before, after = rng.choice(_SURROUNDINGS)
    return {"message": before + v + after, "channel": "chat"}


def _shape_nested(rng: random.Random, v: str) -> dict[str, Any]:
    return {"request": {"items": [{"note": "first"}, {"detail": [v]}]}, "limit": 10}


def _shape_split(rng: random.Random, v: str) -> dict[str, Any]:
    a, b = split_fields(v, rng.randint(1, len(v) - 1))
    return {"part_a": a, "part_b": b}


def _shape_split_text(rng: random.Random, v: str) -> dict[str, Any]:
    before, after = rng.choice(_SURROUNDINGS)
    a, b = split_fields(v, rng.randint(1, len(v) - 1), before, after)
    return {"subject": "re: ticket", "body_1": a, "body_2": b}


# Held out: shapes the detectors were not tuned on (see tests/unit/test_shaped_corpus.py).
def _shape_split_list(rng: random.Random, v: str) -> dict[str, Any]:
    a, b = split_fields(v, rng.randint(1, len(v) - 1), "chunk: ", " (cont.)")
    return {"batch": [{"lines": ["header", a, b, "footer"]}]}


def _shape_csv(rng: random.Random, v: str) -> dict[str, Any]:
    return {"csv": f"id,name,value\n{rng.randint(1, 99)},row,{v}\n"}


def _shape_query(rng: random.Random, v: str) -> dict[str, Any]:
    return {"url": f"https://api.example.com/v1/lookup?q={v}&page=2"}


def _shape_split_nested(rng: random.Random, v: str) -> dict[str, Any]:
    a, b = split_fields(v, rng.randint(1, len(v) - 1))
    return {"form": {"first": {"text": a}, "second": {"text": b}}}


SHAPES: dict[str, Callable[[random.Random, str], dict[str, Any]]] = {
    "field": _shape_field,
    "text": _shape_text,
    "nested": _shape_nested,
    "split": _shape_split,
    "split_text": _shape_split_text,
}
HELD_OUT_SHAPES: dict[str, Callable[[random.Random, str], dict[str, Any]]] = {
    "split_list": _shape_split_list,
    "csv": _shape_csv,
    "query": _shape_query,
    "split_nested": _shape_split_nested,
}


def shaped_corpus(n: int = 2000, seed: int = 0, *, held_out: bool = False) -> list[CanaryCase]:
    """``n`` cases cycling through :data:`SHAPE_KINDS` x the shapes (or the held-out shapes).
    Each case's ``secrets`` is its one raw value; check leaks with :func:`fragments_leaked`."""
    rng = random.Random(seed)
    shapes = HELD_OUT_SHAPES if held_out else SHAPES
    combos = [(k, s) for k in SHAPE_KINDS for s in shapes]
    cases = []
    for i in range(n):
        kind, shape = combos[i % len(combos)]
        text, secret = shaped_value(kind, rng)
        args = shapes[shape](rng, text)
        cases.append(CanaryCase(f"s{i:05d}", kind, shape, args, [secret]))
    return cases


def fragments_leaked(
    value: Any, secret: str, min_len: int = 6, background: Iterable[str] = ()
) -> list[str]:
    """Substrings of ``secret`` of ``min_len`` characters or more present in ``value``
    (any longer one contains one of these), except those the ``background`` text around the
    secret holds anyway ("example.com" of an email beside a URL on that domain)."""
    texts = list(strings_in(value))
    known = list(background)
    found = []
    for i in range(0, max(0, len(secret) - min_len) + 1):
        piece = secret[i : i + min_len]
        if any(piece in t for t in texts) and not any(piece in b for b in known):
            found.append(piece)
    return found


# --------------------------------------------------------------------------------------------
# Benign business text: what detection must leave alone


def _benign_value(rng: random.Random) -> Any:
    hexs = "0123456789abcdef"
    crock = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    d = rng.randint
    makers: list[Callable[[], Any]] = [
        lambda: f"{d(0, 9)}.{d(0, 20)}.{d(0, 9)}.{d(0, 9)}",
        lambda: f"v{d(0, 9)}.{d(0, 20)}.{d(0, 99)}",
        lambda: f"Section {d(1, 9)}.{d(1, 9)}.{d(1, 9)}.{d(1, 9)} applies",
        lambda: f"req_{_chars(rng, crock, 26)}",
        lambda: f"order {rng.choice(['ORD', 'PO', 'INV'])}-{d(2020, 2026)}-{_digits(rng, 6)}",
        lambda: "-".join(_chars(rng, hexs, n) for n in (8, 4, 4, 4, 12)),
        lambda: f"https://shop.example.com/p/{d(1000, 99999)}?ref=mail&utm_source=x{d(1, 9)}",
        lambda: f"{d(2000, 2030)}-{d(1, 12):02d}-{d(1, 28):02d}T{d(0, 23):02d}:{d(0, 59):02d}Z",
        lambda: f"rows {', '.join(str(d(1, 500)) for _ in range(d(3, 8)))} failed",
        lambda: [d(1, 9999) for _ in range(d(3, 8))],
        lambda: rng.choice(["ThinkPad X1 Carbon Gen 11", "iPhone 15 Pro Max 256GB", "Galaxy S24"]),
        lambda: f"2024-05-0{d(1, 9)} 12:0{d(0, 9)}:11 INFO worker-{d(1, 9)} done in {d(1, 999)} ms",
        lambda: (
            f"Build {d(1000, 9999)} of {rng.choice(['api', 'web'])} at commit "
            f"{_chars(rng, hexs, 7)}"
        ),
        lambda: f"Invoice total {d(1, 9999)}.{d(0, 99):02d} EUR, due {d(1, 28)}/{d(1, 12)}",
        lambda: f"Call the API at /v{d(1, 3)}/items/{d(1, 99999)} with limit={d(1, 100)}",
        lambda: f"{d(10, 99)} {d(10, 99)} {d(10, 99)} {d(10, 99)} {d(10, 99)}",
        lambda: f"sku-{_chars(rng, string.ascii_uppercase, 3)}-{d(100, 999)}",
        lambda: f"Meeting moved to {d(1, 12)}:{d(0, 59):02d} pm in room {d(100, 999)}",
    ]
    return rng.choice(makers)()


def benign_corpus(n: int = 1000, seed: int = 0) -> list[dict[str, Any]]:
    """Ordinary request arguments (versions, ids, UUIDs, URLs, dates, number lists, product
    names, log lines) in fields, nested objects, lists and text, none of them sensitive."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for _ in range(n):
        a, b = _benign_value(rng), _benign_value(rng)
        shape = rng.randrange(4)
        if shape == 0:
            out.append({"value": a, "other": b})
        elif shape == 1:
            out.append({"data": {"items": [a, b]}})
        elif shape == 2:
            out.append({"message": f"Note: {a} and then {b}."})
        else:
            out.append({"first": str(a), "second": str(b), "n": rng.randint(1, 50)})
    return out
