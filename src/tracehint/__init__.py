"""tracehint: find every error site in coding-agent transcripts and give it a corrective hint.

The public API is what ``__all__`` lists; everything in ``tracehint._*`` is private.
"""

from __future__ import annotations

__version__ = "0.1.0"

from tracehint._annotator import Annotator, AnnotatorConfig
from tracehint._answer import (
    GENERIC_PHRASES,
    Answer,
    Rejected,
    Rejection,
    Verdict,
    check_answer,
    pick_answer,
)
from tracehint._cache import CachedHint, CacheStats, HintCache, default_cache_path
from tracehint._classify import DEFAULT_RULES, Classification, Classifier, Rule, RuleScope
from tracehint._context import requests_for
from tracehint._exceptions import (
    CacheError,
    ConfigError,
    InputError,
    JudgeAuthError,
    JudgeConfigError,
    JudgeError,
    JudgeUnavailableError,
    OutputError,
    StoppedError,
    TracehintError,
)
from tracehint._hints.judge import JudgeLayer, JudgeLayerStats
from tracehint._hints.layers import HintChain, HintLayer, RawErrorLayer, TemplateLayer, build_layers
from tracehint._hints.templates import DEFAULT_TEMPLATES, Templates
from tracehint._ingest._builder import Block, CallIn, ResultIn, Thinking, TraceBuilder, call_in
from tracehint._ingest.claude_code import AgentMeta, ClaudeCodeParser, read_agent_meta
from tracehint._ingest.formats import InputFormat, ParsedSession, parse_session
from tracehint._ingest.openai import ErrorDetector, parse_openai_messages
from tracehint._judge import (
    FailureReason,
    JudgeClient,
    JudgeConfig,
    JudgeFailure,
    JudgePreflight,
    JudgeReply,
    JudgeStats,
    RetryPolicy,
)
from tracehint._kinds import ErrorKind, HintSource, HintStatus, Role, TurnKind
from tracehint._limits import Limits
from tracehint._mockjudge import MockAnswer, MockJudge, MockJudgeConfig, MockJudgeStats
from tracehint._output import JsonlSink, MemorySink
from tracehint._pipeline import PipelineConfig, SessionBlob, annotate_files, hint_trace
from tracehint._prompt import (
    PROMPT_VERSION,
    RESPONSE_FORMAT,
    SYSTEM_PROMPT,
    JudgePrompt,
    build_prompt,
    cache_key,
)
from tracehint._records import (
    ChatMessage,
    ErrorSite,
    Facts,
    Hint,
    HintRequest,
    InputIssue,
    ToolCall,
    Trace,
    TraceSource,
    Turn,
)
from tracehint._redact import Redactor, SecretPattern, redact
from tracehint._stats import RunStats
from tracehint._teacher import (
    HintPlacement,
    site_message_index,
    site_rows,
    student_messages,
    teacher_messages,
)
from tracehint._wire import read_traces, trace_from_dict, trace_to_dict

__all__ = [
    "DEFAULT_RULES",
    "DEFAULT_TEMPLATES",
    "GENERIC_PHRASES",
    "PROMPT_VERSION",
    "RESPONSE_FORMAT",
    "SYSTEM_PROMPT",
    "AgentMeta",
    "Annotator",
    "AnnotatorConfig",
    "Answer",
    "Block",
    "CacheError",
    "CacheStats",
    "CachedHint",
    "CallIn",
    "ChatMessage",
    "Classification",
    "Classifier",
    "ClaudeCodeParser",
    "ConfigError",
    "ErrorDetector",
    "ErrorKind",
    "ErrorSite",
    "Facts",
    "FailureReason",
    "Hint",
    "HintCache",
    "HintChain",
    "HintLayer",
    "HintPlacement",
    "HintRequest",
    "HintSource",
    "HintStatus",
    "InputError",
    "InputFormat",
    "InputIssue",
    "JsonlSink",
    "JudgeAuthError",
    "JudgeClient",
    "JudgeConfig",
    "JudgeConfigError",
    "JudgeError",
    "JudgeFailure",
    "JudgeLayer",
    "JudgeLayerStats",
    "JudgePreflight",
    "JudgePrompt",
    "JudgeReply",
    "JudgeStats",
    "JudgeUnavailableError",
    "Limits",
    "MemorySink",
    "MockAnswer",
    "MockJudge",
    "MockJudgeConfig",
    "MockJudgeStats",
    "OutputError",
    "ParsedSession",
    "PipelineConfig",
    "RawErrorLayer",
    "Redactor",
    "Rejected",
    "Rejection",
    "ResultIn",
    "RetryPolicy",
    "Role",
    "Rule",
    "RuleScope",
    "RunStats",
    "SecretPattern",
    "SessionBlob",
    "StoppedError",
    "TemplateLayer",
    "Templates",
    "Thinking",
    "ToolCall",
    "Trace",
    "TraceBuilder",
    "TraceSource",
    "TracehintError",
    "Turn",
    "TurnKind",
    "Verdict",
    "__version__",
    "annotate_files",
    "build_layers",
    "build_prompt",
    "cache_key",
    "call_in",
    "check_answer",
    "default_cache_path",
    "hint_trace",
    "parse_openai_messages",
    "parse_session",
    "pick_answer",
    "read_agent_meta",
    "read_traces",
    "redact",
    "requests_for",
    "site_message_index",
    "site_rows",
    "student_messages",
    "teacher_messages",
    "trace_from_dict",
    "trace_to_dict",
]
