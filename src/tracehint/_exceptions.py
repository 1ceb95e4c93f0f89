"""The exception tree of tracehint.

Every exception tracehint raises on purpose derives from one root, so a caller can catch
``TracehintError`` and know it came from here::

    TracehintError
    ├── ConfigError          bad option or argument; the message says which and what to pass
    ├── InputError           an input path cannot be used at all (missing, not a file or folder)
    ├── OutputError          the output cannot be written (exists, disk full, permission)
    ├── CacheError           the hint cache cannot be opened or used
    ├── StoppedError         the run is stopping (``JudgeClient.drain()``): a site that needs a
    │                        new judge request is left unhinted
    └── JudgeError           the LLM judge cannot be used for this run
        ├── JudgeAuthError   the judge refused our credentials (401/403): the run stops early
        ├── JudgeConfigError the judge rejects what we ask (unknown model, a permanent 4xx on
        │                    every request): the run stops, quoting the server
        └── JudgeUnavailableError  nothing answers at the judge URL, or it went away for good

Per-line input problems (bad JSON, wrong shape, bad UTF-8) and per-site judge failures are
*not* exceptions that escape: they are recorded as values (``InputIssue``, ``HintStatus``) and
the run goes on.
"""

from __future__ import annotations

__all__ = [
    "CacheError",
    "ConfigError",
    "InputError",
    "JudgeAuthError",
    "JudgeConfigError",
    "JudgeError",
    "JudgeUnavailableError",
    "OutputError",
    "StoppedError",
    "TracehintError",
]


class TracehintError(Exception):
    """Root of every exception tracehint raises on purpose."""


class ConfigError(TracehintError):
    """A setting or argument is invalid; the message says which and what to pass instead."""


class InputError(TracehintError):
    """An input path cannot be used at all (it does not exist, or is not a file or folder)."""


class OutputError(TracehintError):
    """The output cannot be written; the run stops instead of working into nowhere."""


class CacheError(TracehintError):
    """The hint cache cannot be opened or used."""


class StoppedError(TracehintError):
    """The run is stopping: the judge client sends no new request (``JudgeClient.drain()``).

    Requests already sent still finish (and are cached). The pipeline catches it and leaves
    the trace for ``--resume``; an embedding caller that drained the judge sees it raised by
    ``Annotator.annotate`` for a trace that needed a new request.
    """


class JudgeError(TracehintError):
    """The LLM judge cannot be used for this run.

    ``server_message`` is the server's own words (its error message or the start of its body)
    when the server answered at all; the exception's text quotes it too.
    """

    def __init__(self, message: str, *, server_message: str | None = None) -> None:
        super().__init__(message)
        self.server_message = server_message


class JudgeAuthError(JudgeError):
    """The judge endpoint rejected our credentials (HTTP 401 or 403)."""


class JudgeConfigError(JudgeError):
    """The judge rejects what this run asks of it, the same way every time.

    Raised by the preflight (the model is not among the models the server lists) and by the
    circuit breaker (the first requests all failed with the same 400/404/422).
    """


class JudgeUnavailableError(JudgeError):
    """Nothing answers at the judge URL, or the judge stopped answering for good.

    Raised by the preflight (connection refused, no answer) and by the circuit breaker (many
    requests in a row failed to connect or timed out after all their retries).
    """
