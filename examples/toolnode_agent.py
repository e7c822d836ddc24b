"""An agent whose tools are coordinated by hybridmcp: model -> HybridToolNode -> model.

The model here is scripted (it asks for two tools, then answers from their results), so the
example runs offline; swap in any LangChain chat model that supports tool calling:
``model = ChatOpenAI(...).bind_tools(tools_for_model(resources))``, or hand the node to
``create_react_agent(model, tools=HybridToolNode(resources=resources))`` (docs/toolnode.md).

    python examples/toolnode_agent.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition

from hybridmcp import Context, HybridToolNode, Resources, load_config, tools_for_model


class ScriptedModel:
    """Stands in for a chat model: first tool calls, then an answer from the tool results."""

    def bind_tools(self, tools: list[Any]) -> ScriptedModel:
        self.tools = tools
        return self

    async def ainvoke(self, messages: list[Any]) -> AIMessage:
        results = [m for m in messages if isinstance(m, ToolMessage)]
        if not results:
            return AIMessage(
                "",
                tool_calls=[
                    {"name": "time__now", "args": {"timezone": "Asia/Tokyo"}, "id": "tokyo"},
                    {"name": "math__calculate", "args": {"expression": "19.99 * 3"}, "id": "sum"},
                ],
            )
        return AIMessage(" | ".join(f"{m.tool_call_id}: {m.content}" for m in results))


def build_agent(model: Any) -> Any:
    async def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState, context_schema=Context)
    builder.add_node("model", call_model)
    builder.add_node("tools", HybridToolNode(critical=True))  # cross-validate every tool call
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", tools_condition)
    builder.add_edge("tools", "model")
    return builder.compile(name="hybrid-agent")


async def main() -> None:
    async with await Resources.open(load_config()) as resources:
        model = ScriptedModel().bind_tools(tools_for_model(resources))
        print(f"{len(model.tools)} tools offered to the model, e.g. ", end="")
        print(", ".join(t.name for t in model.tools[:4]))
        out = await build_agent(model).ainvoke(
            {"messages": [HumanMessage("What time is it in Tokyo, and 3 items at 19.99?")]},
            context=Context(resources=resources),
        )
    for message in out["messages"]:
        if isinstance(message, ToolMessage):
            record = message.artifact
            print(
                f"tool {message.name} [{message.status}]: {message.content} "
                f"({record['allocation']}, agreement {record['agreement']}, "
                f"confidence {record['confidence']})"
            )
    print(f"answer: {out['messages'][-1].content}")


if __name__ == "__main__":
    asyncio.run(main())
