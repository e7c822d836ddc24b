"""The dspy signatures the LM-driven steps use.

The first three are the spec's own (``spec/hybrid-coordination-pattern.md``), kept field for field
with the same names and descriptions, so a prompt optimized against the spec's wording transfers
unchanged. ``TaskPlannerSignature`` is the project's addition: it turns free text into the
request list the engine runs, the one place an LM's output becomes executable input (and so is
validated by :func:`hybridmcp.prompts.plans.parse_plan` before anything runs).
"""

from __future__ import annotations

import dspy

__all__ = [
    "CapabilityArbitratorSignature",
    "HybridCoordinatorSignature",
    "ResultSynchronizerSignature",
    "TaskPlannerSignature",
]


class HybridCoordinatorSignature(dspy.Signature):
    """Coordinate between internal capabilities and external MCP services."""

    task_requirements: str = dspy.InputField(desc="Complex task requiring hybrid approach")
    internal_capabilities: str = dspy.InputField(desc="Available internal agent capabilities")
    external_services: str = dspy.InputField(desc="Available external MCP services")
    optimization_criteria: str = dspy.InputField(desc="Performance, cost, and quality criteria")

    coordination_strategy: str = dspy.OutputField(desc="Optimal coordination approach")
    capability_allocation: str = dspy.OutputField(
        desc="Distribution of work between internal/external"
    )
    integration_points: str = dspy.OutputField(
        desc="Points where internal and external results merge"
    )
    performance_optimization: str = dspy.OutputField(
        desc="Optimization strategy for hybrid execution"
    )


class CapabilityArbitratorSignature(dspy.Signature):
    """Decide optimal allocation between internal and external capabilities."""

    capability_comparison: str = dspy.InputField(
        desc="Comparison of internal vs external capabilities"
    )
    performance_requirements: str = dspy.InputField(
        desc="Performance, latency, and quality requirements"
    )
    cost_constraints: str = dspy.InputField(desc="Cost and resource usage constraints")
    security_considerations: str = dspy.InputField(desc="Security and privacy requirements")

    allocation_decision: str = dspy.OutputField(desc="Optimal work allocation strategy")
    performance_prediction: str = dspy.OutputField(desc="Expected performance outcomes")
    cost_optimization: str = dspy.OutputField(desc="Cost optimization recommendations")
    risk_assessment: str = dspy.OutputField(desc="Risk analysis and mitigation strategies")


class ResultSynchronizerSignature(dspy.Signature):
    """Synchronize and integrate results from internal and external processing."""

    internal_results: str = dspy.InputField(desc="Results from internal agent processing")
    external_results: str = dspy.InputField(desc="Results from external MCP services")
    integration_requirements: str = dspy.InputField(desc="Requirements for result integration")
    quality_standards: str = dspy.InputField(desc="Quality validation and consistency requirements")

    synchronized_results: str = dspy.OutputField(desc="Integrated and synchronized final results")
    quality_validation: str = dspy.OutputField(desc="Quality assessment of integrated results")
    consistency_verification: str = dspy.OutputField(desc="Consistency validation across sources")
    optimization_insights: str = dspy.OutputField(
        desc="Insights for future coordination optimization"
    )


class TaskPlannerSignature(dspy.Signature):
    """Turn a task described in free text into calls of the listed skills.

    Use only skill names from the catalogue, and give each call arguments that satisfy that
    skill's input JSON schema. Answer with a JSON list and nothing else in that field.
    """

    task: str = dspy.InputField(desc="The task, in free text, as the user wrote it")
    skills: str = dspy.InputField(
        desc="JSON list of the available skills: name, description, input JSON schema"
    )

    # `requests` comes first so a small model that runs out of tokens still emits the plan.
    requests: str = dspy.OutputField(
        desc='JSON list of calls, each {"id": str, "skill": str, "args": object}, '
        "skill taken from the catalogue, args valid against that skill's input schema"
    )
    rationale: str = dspy.OutputField(desc="Why these calls, in a sentence or two")
