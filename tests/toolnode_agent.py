"""An agent's LangGraph graph whose tools node is a ``HybridToolNode``, checkpointed in SQLite:
run it, kill it anywhere, resume it (``tests/integration/test_toolnode_resume.py``).

``python -m tests.toolnode_agent PHASE DIR --mode async|sync|plain [--thread T]``:
the first turn of the scripted model asks ``note__write`` (the ``bare`` tool of
``tests.annotation_server``: no annotations, a write) twice, ``slow`` (which sleeps after
writing) and ``fast``; the second turn asks ``fast`` again under the same tool call id; then
the model answers. ``run`` starts the thread (``agent-1``), ``pause`` too but stops before
the tools node, ``resume`` goes on from its last checkpoint, ``copy`` copies the thread to
``--thread`` (default ``agent-2``) as the LangGraph server's ``threads.copy`` does on a
checkpointer of the application's own (every checkpoint and pending write, under the same
checkpoint ids), ``delete`` deletes ``agent-1``; ``--thread`` also names the thread
``resume`` goes on with. Each tool message is printed as a
JSON line ``{"id", "status", "content", "replayed"}``.

- ``async``: ``graph.ainvoke`` with LangGraph's ``AsyncSqliteSaver`` (``DIR/agent.db``), the
  node's resources opened on the same loop with the store of ``DIR/runs.db``;
- ``sync``: ``graph.invoke`` with the sync ``SqliteSaver``, the resources opened on an event
  loop in another thread (the node runs its calls there);
- ``plain``: as ``async``, the tools node LangGraph's plain ``ToolNode`` of the skills as
  ``SkillTool`` tools (``tools_for_model``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from hybridmcp import Resources, parse_config
from hybridmcp.persistence import open_persistence
from hybridmcp.toolnode import HybridToolNode, tools_for_model

ROOT = Path(__file__).resolve().parents[1]
THREAD = {"configurable": {"thread_id": "agent-1"}}
COPY = "agent-2"
TURNS = [
    [
        {"name": "note__write", "args": {"entry": "slow", "sleep_ms": 3000}, "id": "call_1"},
        {"name": "note__write", "args": {"entry": "fast"}, "id": "call_2"},
    ],
    [{"name": "note__write", "args": {"entry": "again"}, "id": "call_2"}],
]


def config(journal: Path) -> dict[str, Any]:
    server = {
        "command": sys.executable,
        "args": ["-m", "tests.annotation_server"],
        "env": {"PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", "ANNOTATION_JOURNAL": str(journal)},
        "timeout_ms": 20_000,
    }
    return {
        "mcpServers": {"notes": server},
        "skills": {
            "note.write": {
                "input_schema": {
                    "type": "object",
                    "properties": {"entry": {"type": "string"}, "sleep_ms": {"type": "integer"}},
                    "required": ["entry"],
                },
                "providers": [{"side": "external", "server": "notes", "tool": "bare"}],
            }
        },
    }


def agent(state: MessagesState) -> dict[str, Any]:
    """The scripted model: turn ``n`` asks ``TURNS[n]``, then it answers."""
    turn = sum(isinstance(m, AIMessage) for m in state["messages"])
    calls = TURNS[turn] if turn < len(TURNS) else []
    return {"messages": [AIMessage("" if calls else "done", tool_calls=calls)]}


def build(node: ToolNode) -> StateGraph[MessagesState]:
    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", node)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder


def report(out: dict[str, Any]) -> None:
    for m in out["messages"]:
        if isinstance(m, ToolMessage):
            attempts = (m.artifact or {}).get("attempts") or [{}]
            line = {"id": m.tool_call_id, "status": m.status, "content": m.content}
            print(json.dumps(line | {"replayed": bool(attempts[0].get("replayed"))}), flush=True)


@asynccontextmanager
async def resources(where: Path) -> AsyncIterator[Resources]:
    async with open_persistence(str(where / "runs.db")) as (_saver, store):
        cfg = parse_config(config(where / "journal.txt"))
        async with await Resources.open(cfg, store=store) as res:
            yield res


def _paused(phase: str) -> list[str] | None:
    """``pause`` starts the thread as ``run`` does, but stops before the tools node."""
    return ["tools"] if phase == "pause" else None


def _thread(thread: str | None) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}} if thread else THREAD


async def copy_thread(where: Path, target: str) -> None:
    """``agent-1`` copied to ``target`` as the LangGraph server's ``threads.copy`` copies a
    thread on a checkpointer of the application's own (``langgraph_api``'s checkpointer
    adapter, which needs the server's settings to import): every checkpoint, subgraphs' too,
    oldest first, put again under the target thread with its pending writes."""
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    async with AsyncSqliteSaver.from_conn_string(str(where / "agent.db")) as saver:
        saved = [cp async for cp in saver.alist(THREAD)]
        saved.sort(key=lambda cp: cp.config["configurable"]["checkpoint_id"])
        for cp in saved:
            conf: dict[str, Any] = {
                "thread_id": target,
                "checkpoint_ns": cp.config["configurable"].get("checkpoint_ns", ""),
            }
            parent = (cp.parent_config or {}).get("configurable") or {}
            if parent.get("checkpoint_id") is not None:
                conf["checkpoint_id"] = parent["checkpoint_id"]
            metadata: Any = dict(cp.metadata) | (
                {"thread_id": target} if "thread_id" in cp.metadata else {}
            )
            versions = cp.checkpoint.get("channel_versions", {})
            stored = await saver.aput({"configurable": conf}, cp.checkpoint, metadata, versions)
            by_task: dict[str, list[tuple[str, Any]]] = {}
            for task_id, channel, value in cp.pending_writes or ():
                by_task.setdefault(task_id, []).append((channel, value))
            for task_id, writes in by_task.items():
                await saver.aput_writes(stored, writes, task_id)


async def delete_thread(where: Path) -> None:
    """``agent-1`` deleted, as the server's thread delete deletes a thread's checkpoints."""
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    async with AsyncSqliteSaver.from_conn_string(str(where / "agent.db")) as saver:
        await saver.adelete_thread(THREAD["configurable"]["thread_id"])


async def run_async(
    phase: str, where: Path, plain: bool = False, thread: str | None = None
) -> None:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    async with (
        resources(where) as res,
        AsyncSqliteSaver.from_conn_string(str(where / "agent.db")) as saver,
    ):
        node: ToolNode = HybridToolNode(resources=res)
        if plain:
            node = ToolNode(tools_for_model(res), handle_tool_errors=True)
        graph = build(node).compile(checkpointer=saver, interrupt_before=_paused(phase))
        first = {"messages": [("user", "write the notes")]}
        given = first if phase in ("run", "pause") else None
        report(await graph.ainvoke(given, _thread(thread)))


def run_sync(phase: str, where: Path, thread: str | None = None) -> None:
    from langgraph.checkpoint.sqlite import SqliteSaver

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    opened: asyncio.Future[Resources] = loop.create_future()
    stop = asyncio.Event()

    async def hold() -> None:
        async with resources(where) as res:
            opened.set_result(res)
            await stop.wait()

    held = asyncio.run_coroutine_threadsafe(hold(), loop)
    res = asyncio.run_coroutine_threadsafe(asyncio.wait_for(opened, 60), loop).result()
    try:
        conn = sqlite3.connect(where / "agent.db", check_same_thread=False)
        graph = build(HybridToolNode(resources=res)).compile(
            checkpointer=SqliteSaver(conn), interrupt_before=_paused(phase)
        )
        first = {"messages": [("user", "write the notes")]}
        report(graph.invoke(first if phase in ("run", "pause") else None, _thread(thread)))
    finally:
        loop.call_soon_threadsafe(stop.set)
        held.result(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", choices=["run", "pause", "resume", "copy", "delete"])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--mode", choices=["async", "sync", "plain"], default="async")
    parser.add_argument("--thread")
    args = parser.parse_args()
    if args.phase == "copy":
        asyncio.run(copy_thread(args.dir, args.thread or COPY))
    elif args.phase == "delete":
        asyncio.run(delete_thread(args.dir))
    elif args.mode != "sync":
        asyncio.run(run_async(args.phase, args.dir, args.mode == "plain", args.thread))
    else:
        run_sync(args.phase, args.dir, args.thread)


if __name__ == "__main__":
    main()
