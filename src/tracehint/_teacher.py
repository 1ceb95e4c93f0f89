"""The teacher's context: the student's exact messages with the hint inserted at a known index.

In self-distillation the teacher is the student's own model given the student's context plus
the hint. Both are built from ``Trace.messages`` (native OpenAI chat messages), so a trainer
renders them with its model's chat template and the teacher's rendering is the student's with
exactly one hint message added:

``teacher = messages[:k] + [{"role": hint_role, "content": hint}] + messages[k:]``

with ``k`` the site's ``mistake_message_index`` (``at="mistake"``: the hint right above the
message that made the failing call, as Composer-style and hindsight on-policy distillation do)
or its ``message_index`` (``at="recovery"``: right after the failed result, above the agent's
next message, where the seeds' collator puts it).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

from tracehint._exceptions import ConfigError
from tracehint._kinds import HintStatus
from tracehint._wire import without_reasoning

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tracehint._records import ChatMessage, ErrorSite, Trace, Turn

__all__ = [
    "HintPlacement",
    "SiteOutcome",
    "site_message_index",
    "site_outcomes",
    "site_rows",
    "student_messages",
    "teacher_messages",
]


class HintPlacement(StrEnum):
    """Where the hint goes in the teacher's context, and which message it scores."""

    RECOVERY = "recovery"
    """Above the assistant message right after the failed result (the seeds' collator)."""
    MISTAKE = "mistake"
    """Above the assistant message whose tool call failed (Composer-style, hindsight OPD)."""


def _placement(at: HintPlacement | str) -> HintPlacement:
    try:
        return HintPlacement(at)
    except ValueError:
        choices = ", ".join(repr(p.value) for p in HintPlacement)
        raise ConfigError(f"at={at!r} is not a hint placement; use one of {choices}") from None


def _site_turn(trace: Trace, site: int | Turn) -> tuple[int, Turn, ErrorSite]:
    if isinstance(site, int):
        index = site
        if not 0 <= index < len(trace.turns):
            raise ConfigError(
                f"turn {index} is not in trace {trace.trace_id} ({len(trace.turns)} turns)"
            )
        turn = trace.turns[index]
    else:
        turn = site
        try:
            index = trace.turns.index(turn)
        except ValueError:
            raise ConfigError(f"that turn is not one of trace {trace.trace_id}'s") from None
    if turn.site is None:
        raise ConfigError(f"turn {index} of trace {trace.trace_id} is not an error site")
    return index, turn, turn.site


def _index(trace: Trace, turn_index: int, site: ErrorSite, at: HintPlacement) -> int:
    """The message index the hint goes above, checked against ``trace.messages``."""
    if not trace.messages:
        raise ConfigError(
            f"trace {trace.trace_id} has no `messages` (written by a tracehint that did not "
            "write them yet); annotate its session again"
        )
    index = site.mistake_message_index if at is HintPlacement.MISTAKE else site.message_index
    if index is None:
        raise ConfigError(
            f"the site at turn {turn_index} of trace {trace.trace_id} has no "
            + (
                "mistake message (its failed result answers no call in the conversation); "
                'use at="recovery"'
                if at is HintPlacement.MISTAKE
                else "message index; annotate its session again"
            )
        )
    messages = trace.messages
    if not 0 <= index < len(messages) or messages[index].get("role") != "assistant":
        raise ConfigError(
            f"message {index} of trace {trace.trace_id} is not an assistant message; "
            "the trace's `messages` do not match its sites (was the file edited?)"
        )
    return index


def _messages(trace: Trace, *, reasoning: bool) -> list[ChatMessage]:
    return list(trace.messages) if reasoning else without_reasoning(trace.messages)


def student_messages(
    trace: Trace,
    site: int | Turn,
    *,
    at: HintPlacement | str = HintPlacement.RECOVERY,
    reasoning: bool = True,
) -> list[ChatMessage]:
    """The student's context for a site: the trace's ``messages``, the target at ``k``.

    ``site`` is the turn index (as ``Trace.sites()`` yields it) or the site turn itself; ``k``
    is ``site_message_index(trace, site, at=at)``. ``reasoning=False`` drops the assistants'
    thinking (``reasoning_content``); every other message is the trace's own.
    """
    site_message_index(trace, site, at=at)
    return _messages(trace, reasoning=reasoning)


def site_message_index(
    trace: Trace, site: int | Turn, *, at: HintPlacement | str = HintPlacement.RECOVERY
) -> int:
    """``k``: the index in ``trace.messages`` of the message the hint goes above (the target).

    The site's ``message_index`` for ``at="recovery"``, its ``mistake_message_index`` for
    ``at="mistake"``; checked to be an assistant message.
    """
    turn_index, _turn, found = _site_turn(trace, site)
    return _index(trace, turn_index, found, _placement(at))


def teacher_messages(
    trace: Trace,
    site: int | Turn,
    *,
    at: HintPlacement | str = HintPlacement.RECOVERY,
    hint_role: str = "user",
    hint_prefix: str = "",
    reasoning: bool = True,
) -> list[ChatMessage]:
    """The teacher's context for a site: the student's, with one hint message inserted at ``k``.

    Exactly ``messages[:k] + [{"role": hint_role, "content": hint_prefix + hint}] +
    messages[k:]``, every other message the trace's own (the target is at ``k + 1`` here, at
    ``k`` in the student's). See ``student_messages`` for ``site``, ``at`` and ``reasoning``.
    Raises ``ConfigError`` when the site has no hint.
    """
    turn_index, turn, found = _site_turn(trace, site)
    if turn.hint is None or not turn.hint.text:
        raise ConfigError(
            f"the site at turn {turn_index} of trace {trace.trace_id} has no hint"
            + (f" ({turn.hint.status.value})" if turn.hint is not None else "")
        )
    k = _index(trace, turn_index, found, _placement(at))
    messages = _messages(trace, reasoning=reasoning)
    hint = {"role": hint_role, "content": f"{hint_prefix}{turn.hint.text}"}
    return [*messages[:k], hint, *messages[k:]]


class SiteOutcome(StrEnum):
    """What became of a site when training rows were made (``site_outcomes``)."""

    ROW = "row"
    NO_HINT = "no_hint"
    """No hint: no layer answered, the judge failed, or it found no mistake."""
    OTHER_SOURCE = "other_source"
    """The hint came from a layer not asked for."""
    UNPLACED = "unplaced"
    """No message to place the hint at (``at="mistake"`` for a result answering no call)."""


def site_rows(
    trace: Trace,
    *,
    at: HintPlacement | str = HintPlacement.RECOVERY,
    hint_role: str = "user",
    reasoning: bool = True,
    sources: frozenset[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """One row per hinted site, in the conversational prompt/completion layout TRL reads.

    ``prompt`` is the student's messages before the target, ``completion`` the target
    assistant message (a one-message list), ``teacher_prompt`` the prompt with the hint
    message appended (the hint sits right above the target). Sites without a hint, whose hint
    came from a layer not in ``sources``, or that have no message ``at`` the chosen place give
    no row (``site_outcomes`` says which).
    """
    for outcome, row in site_outcomes(
        trace, at=at, hint_role=hint_role, reasoning=reasoning, sources=sources
    ):
        if outcome is SiteOutcome.ROW and row is not None:
            yield row


def site_outcomes(
    trace: Trace,
    *,
    at: HintPlacement | str = HintPlacement.RECOVERY,
    hint_role: str = "user",
    reasoning: bool = True,
    sources: frozenset[str] | None = None,
) -> Iterator[tuple[SiteOutcome, dict[str, Any] | None]]:
    """Every site of the trace with what became of it, and its row when it made one."""
    placement = _placement(at)
    messages = _messages(trace, reasoning=reasoning)
    for turn_index, turn, found in trace.sites():
        hint = turn.hint
        if hint is None or hint.status is not HintStatus.OK or not hint.text:
            yield SiteOutcome.NO_HINT, None
            continue
        source = hint.source.value if hint.source is not None else None
        if sources is not None and source not in sources:
            yield SiteOutcome.OTHER_SOURCE, None
            continue
        if placement is HintPlacement.MISTAKE and found.mistake_message_index is None:
            yield SiteOutcome.UNPLACED, None
            continue
        k = _index(trace, turn_index, found, placement)
        prompt = messages[:k]
        yield (
            SiteOutcome.ROW,
            {
                "trace_id": trace.trace_id,
                "turn_index": turn_index,
                "at": placement.value,
                "message_index": k,
                "mistake_message_index": found.mistake_message_index,
                "recovery_message_index": found.message_index,
                "kind": found.kind.value,
                "detected_by": found.detected_by.value,
                "tool_name": found.tool_name,
                "hint": hint.text,
                "hint_source": source,
                "hint_model": hint.model,
                "prompt": prompt,
                "completion": [messages[k]],
                "teacher_prompt": [*prompt, {"role": hint_role, "content": hint.text}],
                "source_path": trace.source.path,
                "source_format": trace.source.format,
                **({"tools": list(trace.tools)} if trace.tools else {}),
            },
        )
