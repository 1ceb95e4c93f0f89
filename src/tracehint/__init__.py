"""tracehint: find every error site in coding-agent transcripts and give it a corrective hint.

The public API is what ``__all__`` lists; everything in ``tracehint._*`` is private.
"""

from __future__ import annotations

__version__ = "0.1.0"

from tracehint._annotator import Annotator, AnnotatorConfig, TraceStream
from tracehint._answer import (
    GENERIC_PHRASES,
    Answer,
    Rejected,
    Rejection,
    Verdict,
    check_answer,
    pick_answer,
)
from tracehint._cache import CachedHint, CacheMode, CacheStats, HintCache, default_cache_path
from tracehint._classify import DEFAULT_RULES, Classification, Classifier, Rule, RuleScope
from tracehint._context import requests_for
from tracehint._corrections import (
    DEFAULT_CORRECTION_RULES,
    Correction,
    CorrectionRule,
    Corrections,
    NeedsClaim,
)
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
from tracehint._hints.layers import (
    HintChain,
    HintLayer,
    RawErrorLayer,
    TemplateLayer,
    UserLayer,
    build_layers,
)
from tracehint._hints.reader import ReaderPass, ReaderStats
from tracehint._hints.templates import DEFAULT_TEMPLATES, Templates
from tracehint._ingest.claude_code import AgentMeta, read_agent_meta
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
from tracehint._kinds import (
    READER_KINDS,
    DetectedBy,
    ErrorKind,
    HintSource,
    HintStatus,
    LayerName,
    Role,
    TurnKind,
)
from tracehint._limits import Limits
from tracehint._mockjudge import MockAnswer, MockJudge, MockJudgeConfig, MockJudgeStats
from tracehint._output import JsonlSink, MemorySink
from tracehint._pipeline import PipelineConfig, SessionBlob, annotate_files, hint_trace
from tracehint._prompt import (
    CORRECTION_SYSTEM_PROMPT,
    PROMPT_VERSION,
    RESPONSE_FORMAT,
    SYSTEM_PROMPT,
    JudgePrompt,
    build_correction_prompt,
    build_prompt,
    cache_key,
)
from tracehint._reader import (
    READER_PROMPT_VERSION,
    READER_RESPONSE_FORMAT,
    READER_SYSTEM_PROMPT,
    ReaderConfig,
    ReaderWindow,
    place_findings,
    read_findings,
    reader_windows,
)
from tracehint._records import (
    ChatMessage,
    ErrorSite,
    Facts,
    Finding,
    Hint,
    HintRequest,
    InputIssue,
    ToolCall,
    Trace,
    TraceSource,
    Turn,
)
from tracehint._redact import Redactor, SecretPattern, redact
from tracehint._stats import JudgeTotals, RunStats
from tracehint._teacher import (
    HintPlacement,
    site_message_index,
    site_rows,
    student_messages,
    teacher_messages,
)
from tracehint._wire import read_traces, trace_from_dict, trace_to_dict

__all__ = [
    "CORRECTION_SYSTEM_PROMPT",
    "DEFAULT_CORRECTION_RULES",
    "DEFAULT_RULES",
    "DEFAULT_TEMPLATES",
    "GENERIC_PHRASES",
    "PROMPT_VERSION",
    "READER_KINDS",
    "READER_PROMPT_VERSION",
    "READER_RESPONSE_FORMAT",
    "READER_SYSTEM_PROMPT",
    "RESPONSE_FORMAT",
    "SYSTEM_PROMPT",
    "AgentMeta",
    "Annotator",
    "AnnotatorConfig",
    "Answer",
    "CacheError",
    "CacheMode",
    "CacheStats",
    "CachedHint",
    "ChatMessage",
    "Classification",
    "Classifier",
    "ConfigError",
    "Correction",
    "CorrectionRule",
    "Corrections",
    "DetectedBy",
    "ErrorDetector",
    "ErrorKind",
    "ErrorSite",
    "Facts",
    "FailureReason",
    "Finding",
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
    "JudgeTotals",
    "JudgeUnavailableError",
    "LayerName",
    "Limits",
    "MemorySink",
    "MockAnswer",
    "MockJudge",
    "MockJudgeConfig",
    "MockJudgeStats",
    "NeedsClaim",
    "OutputError",
    "ParsedSession",
    "PipelineConfig",
    "RawErrorLayer",
    "ReaderConfig",
    "ReaderPass",
    "ReaderStats",
    "ReaderWindow",
    "Redactor",
    "Rejected",
    "Rejection",
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
    "ToolCall",
    "Trace",
    "TraceSource",
    "TraceStream",
    "TracehintError",
    "Turn",
    "TurnKind",
    "UserLayer",
    "Verdict",
    "__version__",
    "annotate_files",
    "build_correction_prompt",
    "build_layers",
    "build_prompt",
    "cache_key",
    "check_answer",
    "default_cache_path",
    "hint_trace",
    "parse_openai_messages",
    "parse_session",
    "pick_answer",
    "place_findings",
    "read_agent_meta",
    "read_findings",
    "read_traces",
    "reader_windows",
    "redact",
    "requests_for",
    "site_message_index",
    "site_rows",
    "student_messages",
    "teacher_messages",
    "trace_from_dict",
    "trace_to_dict",
]
