"""Size bounds applied while reading transcripts, and the text clamps that enforce them."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "Limits",
    "clamp",
    "clamp_middle",
    "clamp_middle_stripped",
    "clamp_stripped",
    "strip_span",
]

_ELLIPSIS = "…"


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Bounds that keep records small whatever the transcript holds.

    Transcript content itself is kept whole (it is the training data); these bound only the
    fields that describe a site and feed the hint layers.
    """

    error_message_chars: int = 2000
    """``error_meta.error_message``: head and tail kept, the middle elided."""
    tool_input_chars: int = 1000
    """``error_meta.tool_input`` (compact JSON)."""
    excerpt_chars: int = 200
    """``error_meta.source_content_excerpt`` (as in the seeds)."""
    next_action_chars: int = 1000
    """The assistant's next action given to the hint layers."""
    instruction_chars: int = 1200
    """Each user instruction given to the hint layers (the first one and the latest one)."""
    intent_chars: int = 800
    """The agent's text before the failing call given to the hint layers (its tail kept)."""
    hint_chars: int = 600
    """The hint itself (the seeds' clamp)."""
    max_line_bytes: int = 128 * 1024 * 1024
    """A longer input line is skipped and recorded as an input issue."""
    chunk_bytes: int = 1024 * 1024
    """Bytes read from a file at a time."""
    issues_per_file: int = 20
    """Input issues recorded per file before the rest are only counted."""
    judge_prompt_chars: int = 4000
    """Characters of site text (error message, tool input, next action) in one judge prompt,
    shared 2:1:1 (``judge_prompt_budgets``); a site whose prompt is over the model's context
    length is asked once more with a quarter of it (``--judge-prompt-chars``)."""

    def judge_prompt_budgets(self, divisor: int = 1) -> dict[str, int]:
        """``build_prompt``'s budgets for ``judge_prompt_chars / divisor`` characters."""
        total = max(self.judge_prompt_chars // divisor, 40)
        return {
            "error_chars": total // 2,
            "input_chars": total // 4,
            "action_chars": total - total // 2 - total // 4,
        }

    def __post_init__(self) -> None:
        for name in (
            "error_message_chars",
            "tool_input_chars",
            "excerpt_chars",
            "next_action_chars",
            "instruction_chars",
            "intent_chars",
            "hint_chars",
            "max_line_bytes",
            "chunk_bytes",
            "issues_per_file",
            "judge_prompt_chars",
        ):
            if getattr(self, name) <= 0:
                from tracehint._exceptions import ConfigError  # noqa: PLC0415 -- cycle-free lazy import

                raise ConfigError(f"Limits.{name} must be positive, got {getattr(self, name)}")


def clamp(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, marking the cut with an ellipsis."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + _ELLIPSIS


def clamp_middle(text: str, limit: int) -> str:
    """Keep the head and the tail of ``text`` within ``limit`` characters.

    Error output often says what went wrong at the end (tracebacks) and where at the start,
    so both ends are worth more than either alone.
    """
    if len(text) <= limit:
        return text
    marker = f"\n{_ELLIPSIS}[{len(text) - limit} chars elided]{_ELLIPSIS}\n"
    if limit < len(marker) + 2:
        return clamp(text, limit)
    keep = limit - len(marker)
    head = keep // 2
    tail = keep - head
    return text[:head] + marker + text[len(text) - tail :]


def strip_span(text: str, start: int = 0) -> tuple[int, int]:
    """Where ``text[start:].strip()`` starts and ends in ``text``, without copying ``text``."""
    leading = _LEADING_SPACE.match(text, start)
    start = leading.end() if leading is not None else start
    stop = len(text)
    while stop > start and text[stop - 1].isspace():
        stop -= 1
    return start, stop


_LEADING_SPACE = re.compile(r"\s*")
_COPY_CHARS = 1024 * 1024
"""From this length on, stripping a text to clamp it would copy more than it keeps."""


def clamp_stripped(text: str, limit: int) -> str:
    """``clamp(text.strip(), limit)``, without copying all of a long ``text``."""
    if len(text) < _COPY_CHARS:
        return clamp(text.strip(), limit)
    start, stop = strip_span(text)
    return clamp(text[start : min(stop, start + limit + 1)], limit)


def clamp_middle_stripped(text: str, limit: int) -> str:
    """``clamp_middle(text.strip(), limit)``, without copying all of a long ``text``."""
    if len(text) < _COPY_CHARS:
        return clamp_middle(text.strip(), limit)
    start, stop = strip_span(text)
    size = stop - start
    if size <= limit:
        return text[start:stop]
    marker = f"\n{_ELLIPSIS}[{size - limit} chars elided]{_ELLIPSIS}\n"
    if limit < len(marker) + 2:
        return clamp(text[start : start + limit + 1], limit)
    keep = limit - len(marker)
    head = keep // 2
    tail = keep - head
    return text[start : start + head] + marker + text[stop - tail : stop]
