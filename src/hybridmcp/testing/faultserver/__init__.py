"""A real MCP server that misbehaves on purpose: the project's fault-injecting test server.

It serves real tools, so its answers can be cross-validated against hybridmcp's internal skills:

- ``get_current_time(timezone)`` and ``convert_time(source_timezone, time, target_timezone)``,
  with the output shapes of the PyPI ``mcp-server-time`` server;
- ``calculate(expression)`` -> ``{"value": number}`` (safe arithmetic, an ``ast`` walker);
  ``calculate_typed(expression)`` is the same with a declared ``outputSchema`` (the only tool
  with one), so a ``wrong_shape`` answer breaks a schema the client can check;
- ``word_count(text)`` -> ``{"words", "characters", "sentences"}``;
- ``echo(text)`` -> ``{"text"}`` and ``sleep(ms)`` -> ``{"slept_ms"}`` (a real asyncio sleep);
- ``echo_json(payload)`` -> ``{"payload"}``: any JSON object back, never faulted (the privacy
  proof's recording target);
- ``fault_control(faults=None, reset_counters=False)``: replace the fault configuration at run
  time and read it back with the per-tool call counters (never itself subject to faults).

How results are answered is chosen with ``--answers`` (faulted answers included):

``both`` (the default)
    A JSON text content (indented, like ``mcp-server-time``) plus the same object as structured
    content. No tool declares an output schema, so a malformed answer reaches the client as it
    is, the way a badly behaved real server's would.
``text``
    The JSON text content only, no structured content: the client must parse the text.
``structured``
    FastMCP's natural structured output: each tool returns its object and is registered with
    ``structured_output=True``, so it declares an output schema (any object) and FastMCP writes
    both contents. A faulted answer is still sent as it is; the client checks it against the
    schema (an ``invalid_json`` answer, having no structured content, fails that check).

``calculate_typed`` keeps its declared output schema and structured content in every mode.

The package: :mod:`.plan` (which fault applies to which call), :mod:`.tools` (the real tools
and their wrong answers), :mod:`.server` (the FastMCP server and its command line).

Run it::

    python -m hybridmcp.testing.faultserver                       # stdio
    python -m hybridmcp.testing.faultserver --transport streamable-http --port 8123  # /mcp
    python -m hybridmcp.testing.faultserver --transport sse --port 8124              # /sse
    python -m hybridmcp.testing.faultserver --transport streamable-http \\
        --require-header 'Authorization: Bearer s3cret'   # 401 to any request without it
    python -m hybridmcp.testing.faultserver --faults '{"calculate": {"fail_first": 2}}' \\
        --seed 7 --record calls.jsonl --answers text

Faults are keyed by tool name, or ``"*"`` for every tool (a tool's own keys override the ``"*"``
keys one by one). They come from ``--faults`` (a JSON object, or the path of a JSON or YAML file),
else the ``HYBRIDMCP_FAULTS`` environment variable (same format), and can be replaced at run time
with ``fault_control``. Keys of one tool's spec, all optional:

``latency_ms``, ``jitter_ms``
    Delay added to every call: ``latency_ms`` plus a uniform draw in ``[0, jitter_ms]``.
``slow_ms`` with ``slow_first``, ``slow_rate``
    ``slow_ms`` more for the first ``slow_first`` calls (a slow start, then healthy), and for
    each call with probability ``slow_rate`` (bimodal latency: most calls fast, some slow).
``fail_rate``, ``fail_first``, ``fail_every``
    The call fails with an MCP tool error (``isError=true``): with probability ``fail_rate``
    (deterministic given ``--seed``), for the first ``fail_first`` calls, or for every
    ``fail_every``-th call (intermittent: calls k, 2k, 3k, ...).
``hang``, ``hang_rate``
    The call never answers (always, or with probability ``hang_rate``).
``crash``, ``crash_after``
    The process exits with ``os._exit(1)`` in the middle of the call, without answering: on every
    call, or on call ``crash_after + 1`` and later.
``partial``
    ``"stall"`` or ``"crash"``: over stdio, the first half of the answer's JSON-RPC line is
    written, then the server stalls (answering nothing more, its later answers written after
    the cut line) or exits. Over HTTP (whose response the server framework writes) ``"stall"``
    hangs the call and ``"crash"`` exits in the middle of it, its response begun.
``malformed``
    ``true`` or ``"invalid_json"``: the text is truncated JSON (no structured content);
    ``"wrong_shape"``: valid JSON of the wrong shape (``{"status": "ok", "data": [values]}``).
``oversized_bytes``
    The text content is exactly that many bytes (the real answer padded, while it fits).
``error_text``
    The given message is returned as a NORMAL result, ``isError=false``, as some servers do.
``wrong_answer``
    A plausible but different value: ``calculate`` +1, times shifted by 3 hours, ``word_count``
    one word more, ``echo`` one character less, ``sleep`` one millisecond more.

Counting keys (``slow_first``, ``fail_first``, ``fail_every``, ``crash_after``) count the calls
of the scope they are written in: under a tool name, that tool's calls; under ``"*"``, all tool
calls. Precedence when several apply: crash, hang, fail, partial; then error_text, malformed,
oversized, wrong_answer. Random draws come from ``random.Random`` seeded by (seed, tool, call
number), so a given call of a given tool gets the same fate whatever the order or concurrency
of the calls.

``--record FILE`` appends one JSON line per received tool call, before any fault is applied::

    {"ts": 1767225600.123, "tool": "echo", "arguments": {"text": "hi"}}

(``fault_control`` calls are recorded too; filter on ``tool``.)
"""

from hybridmcp.testing.faultserver.plan import (
    ANSWER_MODES,
    CONTROL_TOOL,
    ENV_FAULTS,
    FAULTABLE_TOOLS,
    WILDCARD,
    WRONG_TIME_SHIFT,
    Action,
    Answers,
    FaultDecision,
    FaultPlan,
    FaultSpec,
    Output,
    call_rng,
    load_fault_config,
    render_output,
)
from hybridmcp.testing.faultserver.server import (
    CallRecorder,
    FaultMCP,
    FaultState,
    TypedValue,
    _parse_args,
    build_server,
    main,
    require_header,
)
from hybridmcp.testing.faultserver.tools import (
    IMPLEMENTATIONS,
    MAX_EXPRESSION_CHARS,
    MAX_INT_BITS,
    WRONG_ANSWERS,
    ToolInputError,
    calculate,
    convert_time,
    current_time,
    word_count,
)

__all__ = [
    "ANSWER_MODES",
    "CONTROL_TOOL",
    "ENV_FAULTS",
    "FAULTABLE_TOOLS",
    "IMPLEMENTATIONS",
    "MAX_EXPRESSION_CHARS",
    "MAX_INT_BITS",
    "WILDCARD",
    "WRONG_ANSWERS",
    "WRONG_TIME_SHIFT",
    "Action",
    "Answers",
    "CallRecorder",
    "FaultDecision",
    "FaultMCP",
    "FaultPlan",
    "FaultSpec",
    "FaultState",
    "Output",
    "ToolInputError",
    "TypedValue",
    "_parse_args",
    "build_server",
    "calculate",
    "call_rng",
    "convert_time",
    "current_time",
    "load_fault_config",
    "main",
    "render_output",
    "require_header",
    "word_count",
]
