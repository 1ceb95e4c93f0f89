"""Hint quality against hand labels: kind accuracy and wrong / specific / generic hints.

Labels are JSON files (see ``quality/labels/README.md``): for every failed tool result of a
transcript, whether it was the agent's mistake, its kind, what a hint specific to the site must
mention, and what it must never claim. ``score`` matches them to annotated traces by file and
call id and counts:

- **kind**: the site's kind in the label's family (command-failure subkinds are one family);
- **wrong**: a template or judge hint that matches one of the label's ``must_not_claim``
  patterns (a false statement about the site), or any site on a non-mistake;
- **specific**: a template or judge hint that mentions everything in ``must_mention``;
- **generic**: any other template or judge hint; **raw**: the raw error text (it quotes the
  error and claims nothing), **none**: no hint.

Sites no failed result made (a user's reply that corrects the agent, a reader finding) are not
scored against these labels. The user's replies have labels of their own
(``quality/corrections``): ``score_corrections`` counts the reply sites found against every
labelled reply (a correction or not), as precision and recall.

Pure and sync: the JSON edge is ``load_labels``, ``load_corrections`` and ``load_traces``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from tracehint._exceptions import InputError
from tracehint._kinds import ErrorKind
from tracehint._wire import read_traces

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from pathlib import Path

__all__ = [
    "CorrectionLabel",
    "CorrectionReport",
    "HintVerdict",
    "Label",
    "QualityReport",
    "SiteScore",
    "load_corrections",
    "load_labels",
    "load_traces",
    "score",
    "score_corrections",
]


@dataclass(frozen=True, slots=True)
class Label:
    """One labelled failed tool result."""

    file: str
    """Path relative to the corpus root."""
    call_id: str
    mistake: bool
    kind: ErrorKind
    must_mention: tuple[tuple[str, ...], ...]
    must_not_claim: tuple[re.Pattern[str], ...]
    record: str | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class LabelSet:
    """Labels and the files they label completely."""

    labels: tuple[Label, ...]
    files: frozenset[str]


def _family(kind: str) -> str:
    try:
        return ErrorKind(kind).family
    except ValueError:
        return kind


_Label = TypeVar("_Label")


def _read_label_files(
    paths: Iterable[Path], what: str, read: Callable[[dict[str, Any]], Iterable[_Label]]
) -> tuple[tuple[_Label, ...], frozenset[str]]:
    """The labels ``read`` takes from each label file, and the files they say they cover.

    A folder means every ``*.json`` in it.
    """
    labels: list[_Label] = []
    files: set[str] = set()
    for given in paths:
        for path in sorted(given.glob("*.json")) if given.is_dir() else [given]:
            try:
                data = orjson.loads(path.read_bytes())
                files.update(data.get("files", ()))
                labels.extend(read(data))
            except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise InputError(f"{path}: not a {what} ({exc})") from exc
    return tuple(labels), frozenset(files)


def load_labels(paths: Iterable[Path]) -> LabelSet:
    """Read label files (a folder means every ``*.json`` in it)."""
    return LabelSet(
        *_read_label_files(paths, "label file", lambda data: map(_label, data["sites"]))
    )


def _label(site: dict[str, Any]) -> Label:
    mention = tuple(
        tuple(item) if isinstance(item, list) else (item,) for item in site["must_mention"]
    )
    return Label(
        file=site["file"],
        call_id=str(site["call_id"]),
        mistake=bool(site["mistake"]),
        kind=ErrorKind(site["kind"]),
        must_mention=mention,
        must_not_claim=tuple(re.compile(p, re.IGNORECASE) for p in site["must_not_claim"]),
        record=site.get("record"),
        note=site.get("note", ""),
    )


@dataclass(frozen=True, slots=True)
class FoundSite:
    """A site as written in the output (the JSON edge, read back)."""

    path: str
    trace_id: str
    call_id: str
    kind: str
    hint: str | None
    source: str | None
    detected_by: str = "tool_error"
    error_message: str = ""

    @property
    def is_reply(self) -> bool:
        """Whether no failed result made the site: a reply that corrects, or a reader finding.

        The failed-result labels do not cover them.
        """
        return self.detected_by == "reader" or (self.detected_by == "user" and not self.call_id)


def load_traces(paths: Iterable[Path]) -> list[FoundSite]:
    """The sites of annotated traces (``tracehint annotate`` output files).

    Read with ``read_traces``: a line that is not a trace is an ``InputError`` naming it.
    """
    found: list[FoundSite] = []
    for path in paths:
        for trace in read_traces(path):
            for _index, turn, site in trace.sites():
                hint = turn.hint
                found.append(
                    FoundSite(
                        path=trace.source.path,
                        trace_id=trace.trace_id,
                        call_id=site.tool_use_id,
                        kind=site.kind.value,
                        hint=hint.text if hint is not None else None,
                        source=hint.source.value
                        if hint is not None and hint.source is not None
                        else None,
                        detected_by=site.detected_by.value,
                        error_message=site.error_message,
                    ),
                )
    return found


class HintVerdict:
    """Names of the hint verdicts."""

    WRONG = "wrong"
    SPECIFIC = "specific"
    GENERIC = "generic"
    RAW = "raw"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class SiteScore:
    """How one labelled mistake fared."""

    label: Label
    site: FoundSite | None
    kind_right: bool
    verdict: str
    why: str = ""


@dataclass(slots=True)
class QualityReport:
    """The counts of one scoring run."""

    scores: list[SiteScore] = field(default_factory=list)
    spurious: list[tuple[FoundSite, str]] = field(default_factory=list)
    unread: list[Label] = field(default_factory=list)
    """Labels whose file no trace came from (a format not read)."""
    intended: list[FoundSite] = field(default_factory=list)
    """Sites on failures the agent caused on purpose (a test run the user asked for): only
    the judge can tell (its ``not_a_mistake`` verdict), so they are counted apart."""

    @property
    def found(self) -> list[SiteScore]:
        """Labelled mistakes that are sites."""
        return [s for s in self.scores if s.site is not None]

    @property
    def kind_accuracy(self) -> float:
        """Share of found mistakes whose kind is in the label's family."""
        found = self.found
        return sum(s.kind_right for s in found) / len(found) if found else 1.0

    @property
    def verdicts(self) -> Counter[str]:
        """Hint verdicts over found mistakes."""
        return Counter(s.verdict for s in self.found)

    @property
    def specific_share(self) -> float:
        """Share of hinted found mistakes whose hint is specific."""
        verdicts = self.verdicts
        hinted = sum(n for v, n in verdicts.items() if v != HintVerdict.NONE)
        return verdicts[HintVerdict.SPECIFIC] / hinted if hinted else 0.0

    def summary(self) -> str:
        """A few lines for people."""
        verdicts = self.verdicts
        missed = [s for s in self.scores if s.site is None]
        lines = [
            (
                f"labelled mistakes: {len(self.scores)} (found as sites: {len(self.found)}, "
                f"not a site: {len(missed)}); labels in formats not read: {len(self.unread)}"
            ),
            f"kind accuracy (families): {self.kind_accuracy:.1%}",
            "hints: "
            + ", ".join(
                f"{v} {verdicts[v]}"
                for v in (
                    HintVerdict.WRONG,
                    HintVerdict.SPECIFIC,
                    HintVerdict.GENERIC,
                    HintVerdict.RAW,
                    HintVerdict.NONE,
                )
            )
            + f"; specific share {self.specific_share:.1%}",
            (
                f"spurious sites (non-mistakes or unlabelled in complete files): "
                f"{len(self.spurious)}; sites on intended failures (judge's call): "
                f"{len(self.intended)}"
            ),
        ]
        return "\n".join(lines)


def _mentions(hint: str, needed: Sequence[tuple[str, ...]]) -> list[str]:
    lowered = hint.lower()
    return ["/".join(group) for group in needed if not any(i.lower() in lowered for i in group)]


def _judge_hint(label: Label, site: FoundSite) -> tuple[str, str]:
    if not site.hint:
        return HintVerdict.NONE, ""
    if site.source == "raw":
        return HintVerdict.RAW, ""
    for pattern in label.must_not_claim:
        match = pattern.search(site.hint)
        if match is not None:
            return HintVerdict.WRONG, f"claims {match.group(0)!r}"
    missing = _mentions(site.hint, label.must_mention)
    if missing:
        return HintVerdict.GENERIC, "misses " + ", ".join(missing)
    return HintVerdict.SPECIFIC, ""


def _relative(path: str, files: Iterable[str]) -> str | None:
    normal = path.replace("\\", "/")
    return next((f for f in files if normal.endswith("/" + f.rstrip("/")) or normal == f), None)


def score(labels: LabelSet, sites: Sequence[FoundSite]) -> QualityReport:  # noqa: C901, PLR0912 -- one pass over labels, one over sites
    """Score annotated sites against labels."""
    report = QualityReport()
    label_files = {label.file for label in labels.labels} | set(labels.files)
    by_key: dict[tuple[str, str], list[FoundSite]] = {}
    read_files: set[str] = set()
    for site in sites:
        if site.is_reply:
            continue
        rel = _relative(site.path, label_files) or _folder_of(site.path, label_files)
        if rel is None:
            continue
        read_files.add(rel)
        by_key.setdefault((rel, site.call_id), []).append(site)
    used: set[int] = set()
    for label in labels.labels:
        candidates = by_key.get((label.file, label.call_id), [])
        if label.record is not None:
            candidates = [c for c in candidates if label.record in c.trace_id] or candidates
        found = candidates[0] if candidates else None
        if found is not None:
            used.add(id(found))
        if not label.mistake:
            if found is not None and label.kind.is_mistake:
                report.intended.append(found)
            elif found is not None:
                report.spurious.append((found, f"site on a non-mistake ({label.kind.value})"))
            continue
        if found is None:
            if label.file not in read_files:
                report.unread.append(label)
            report.scores.append(SiteScore(label, None, kind_right=False, verdict=HintVerdict.NONE))
            continue
        kind_right = _family(found.kind) == label.kind.family
        verdict, why = _judge_hint(label, found)
        report.scores.append(SiteScore(label, found, kind_right, verdict, why))
    complete = set(labels.files)
    for site in sites:
        if id(site) in used or site.is_reply:
            continue
        rel = _relative(site.path, complete) or _folder_of(site.path, complete)
        if rel is not None:
            report.spurious.append((site, "no label for this site in a completely labelled file"))
    return report


def _folder_of(path: str, files: Iterable[str]) -> str | None:
    """A labelled folder (``.../session/``) that holds ``path``."""
    normal = path.replace("\\", "/")
    return next((f for f in files if f.endswith("/") and f"/{f}" in normal), None)


# -- the user's replies ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CorrectionLabel:
    """One labelled user reply: whether it corrects the agent's preceding message."""

    file: str
    trace: str
    quote: str
    """Words of the reply (whitespace aside, they occur in the site's ``error_message``)."""
    correction: bool
    note: str = ""


@dataclass(frozen=True, slots=True)
class CorrectionLabels:
    """Reply labels and the files whose every reply is labelled."""

    labels: tuple[CorrectionLabel, ...]
    files: frozenset[str]


def load_corrections(paths: Iterable[Path]) -> CorrectionLabels:
    """Read reply label files (a folder means every ``*.json`` in it)."""
    return CorrectionLabels(
        *_read_label_files(paths, "reply label file", lambda data: map(_reply, data["replies"]))
    )


def _reply(item: dict[str, Any]) -> CorrectionLabel:
    return CorrectionLabel(
        file=item["file"],
        trace=item["trace"],
        quote=item["quote"],
        correction=bool(item["correction"]),
        note=item.get("note", ""),
    )


@dataclass(slots=True)
class CorrectionReport:
    """Reply sites against reply labels."""

    found: list[CorrectionLabel] = field(default_factory=list)
    """Corrections that are sites (true positives)."""
    missed: list[CorrectionLabel] = field(default_factory=list)
    """Corrections that are not sites."""
    wrong: list[tuple[FoundSite, str]] = field(default_factory=list)
    """Sites on replies that are no correction, or on no labelled reply (false positives)."""
    passed: int = 0
    """Replies labelled as no correction that are not sites (true negatives)."""

    @property
    def precision(self) -> float:
        """Share of reply sites that are corrections (1.0 with no site)."""
        sites = len(self.found) + len(self.wrong)
        return len(self.found) / sites if sites else 1.0

    @property
    def recall(self) -> float:
        """Share of labelled corrections found as sites."""
        corrections = len(self.found) + len(self.missed)
        return len(self.found) / corrections if corrections else 1.0

    def summary(self) -> str:
        """One line for people."""
        return (
            f"user corrections (replies): {len(self.found)} found, {len(self.missed)} missed, "
            f"{len(self.wrong)} wrong, {self.passed} replies rightly left alone; "
            f"precision {self.precision:.1%}, recall {self.recall:.1%}"
        )


def _squashed(text: str) -> str:
    return " ".join(text.split())


def score_corrections(labels: CorrectionLabels, sites: Sequence[FoundSite]) -> CorrectionReport:
    """Score the reply sites (``detected_by: user`` with no rejected call) against labels."""
    report = CorrectionReport()
    replies = [s for s in sites if s.detected_by == "user" and not s.call_id]
    files = set(labels.files) | {label.file for label in labels.labels}
    used: set[int] = set()
    for label in labels.labels:
        quote = _squashed(label.quote)
        match = next(
            (
                site
                for site in replies
                if id(site) not in used
                and site.trace_id == label.trace
                and _relative(site.path, [label.file]) is not None
                and quote in _squashed(site.error_message)
            ),
            None,
        )
        if match is not None:
            used.add(id(match))
        if label.correction and match is not None:
            report.found.append(label)
        elif label.correction:
            report.missed.append(label)
        elif match is not None:
            report.wrong.append((match, f"no correction: {label.note}"))
        else:
            report.passed += 1
    for site in replies:
        if id(site) not in used and _relative(site.path, files) is not None:
            report.wrong.append((site, "a site on a reply no label names"))
    return report
