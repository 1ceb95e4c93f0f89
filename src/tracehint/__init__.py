"""tracehint: find every error site in coding-agent transcripts and give it a corrective hint.

The public API is what ``__all__`` lists; everything in ``tracehint._*`` is private.
"""

from __future__ import annotations

__version__ = "0.1.0"

from tracehint._classify import DEFAULT_RULES, Classification, Classifier, Rule
from tracehint._exceptions import (
    CacheError,
    ConfigError,
    InputError,
    JudgeAuthError,
    JudgeError,
    OutputError,
    TracehintError,
)
from tracehint._hints.layers import HintChain, HintLayer, RawErrorLayer, TemplateLayer, build_layers
from tracehint._hints.templates import DEFAULT_TEMPLATES, Templates
from tracehint._ingest._builder import ResultIn, TraceBuilder
from tracehint._ingest.claude_code import ClaudeCodeParser
from tracehint._kinds import ErrorKind, HintSource, HintStatus, Role, TurnKind
from tracehint._limits import Limits
from tracehint._output import JsonlSink
from tracehint._pipeline import PipelineConfig, annotate_files, hint_trace
from tracehint._records import (
    ErrorSite,
    Hint,
    HintRequest,
    InputIssue,
    ToolCall,
    Trace,
    TraceSource,
    Turn,
)
from tracehint._stats import RunStats
from tracehint._wire import trace_to_dict

__all__ = [
    "DEFAULT_RULES",
    "DEFAULT_TEMPLATES",
    "CacheError",
    "Classification",
    "Classifier",
    "ClaudeCodeParser",
    "ConfigError",
    "ErrorKind",
    "ErrorSite",
    "Hint",
    "HintChain",
    "HintLayer",
    "HintRequest",
    "HintSource",
    "HintStatus",
    "InputError",
    "InputIssue",
    "JsonlSink",
    "JudgeAuthError",
    "JudgeError",
    "Limits",
    "OutputError",
    "PipelineConfig",
    "RawErrorLayer",
    "ResultIn",
    "Role",
    "Rule",
    "RunStats",
    "TemplateLayer",
    "Templates",
    "ToolCall",
    "Trace",
    "TraceBuilder",
    "TraceSource",
    "TracehintError",
    "Turn",
    "TurnKind",
    "__version__",
    "annotate_files",
    "build_layers",
    "hint_trace",
    "trace_to_dict",
]
