"""OpenAI Responses API conversations (rollouts saved as ``{"input": [...]}``) → traces.

Knows the Responses API record shape: ``instructions``, then ``input`` (and ``output``) item
lists. The items are the ones Codex writes (``message``, ``reasoning``, ``function_call``
answered by ``function_call_output`` with the same ``call_id``), so ``codex`` reads them; a
result failed when its output says so the way Codex outputs do (``Exit code: N`` with N ≠ 0,
``metadata.exit_code``, ``success: false``). One trace per record, named by the record's
``trace_id`` or ``id`` when it has one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from tracehint._ingest._builder import chat_tools
from tracehint._ingest._document import Outcome, as_str
from tracehint._ingest.codex import CodexParser
from tracehint._kinds import InputFormat

if TYPE_CHECKING:
    from tracehint._ingest._document import ReadContext

__all__ = ["FORMAT", "is_record", "read_responses"]

FORMAT = InputFormat.OPENAI_RESPONSES

_ITEM_TYPES = frozenset({"message", "function_call", "function_call_output", "reasoning"})


def is_record(value: object) -> bool:
    """Whether ``value`` is a ``{"input": [...]}`` record of Responses API items."""
    if not isinstance(value, dict) or not isinstance(value.get("input"), list):
        return False
    return any(
        isinstance(item, dict) and (item.get("type") in _ITEM_TYPES or "role" in item)
        for item in value["input"][:50]
    )


def read_responses(value: object, context: ReadContext) -> Outcome:
    """Read one Responses API conversation (its ``input``, then its ``output``)."""
    outcome = Outcome()
    if not isinstance(value, dict) or not isinstance(value.get("input"), list):
        outcome.problems.append("expected an object with an 'input' list of items")
        return outcome
    given = value.get("trace_id", value.get("id"))
    trace_id = str(given) if isinstance(given, (str, int)) else context.default_id()
    parser = CodexParser(
        context.path, context.classifier, context.limits, format=FORMAT, trace_id=trace_id
    )
    instructions = as_str(value.get("instructions"))
    if instructions is not None:
        parser.system(instructions)
    output = value.get("output")
    items = [*value["input"], *(output if isinstance(output, list) else [])]
    for index, item in enumerate(items):
        problem = (
            parser.read_item(item)
            if isinstance(item, dict)
            else f"item is {type(item).__name__}, not an object"
        )
        if problem is not None:
            outcome.problems.append(f"item {index}: {problem}")
    tools = chat_tools(value.get("tools"))
    outcome.traces.extend(replace(trace, tools=tools) for trace in parser.finish())
    outcome.skipped += parser.skipped_entries
    outcome.orphans += parser.orphan_results
    return outcome
