"""What the Metering model's doc strings say about timestamps: each operation's window, whether a record
exactly the window's age is still accepted, and the month-end grace period / cut-off hour.

The model has no trait for these rules; only its prose states them ("Usage records aren't accepted 24 hours or
more after an event", "more than six hours after events occur", "a 6-hour grace period", "until 06:00 UTC on
the first day of the next month"). Both model-drift tests (spec/connector/test_botocore_model.py and
spec/emulator/test_model_drift.py) read the numbers here and compare them with their own constants. This
module reads only the model: it imports neither lib/ nor the emulator.

When AWS rewords a text so that a rule this parser used to find is no longer found, the tests fail with
:func:`unreadable`: a human has to read the new text, not the parser guess.
"""

from __future__ import annotations

import html
import re
from typing import Any, NamedTuple

WINDOW, GRACE, CUTOFF, BOUNDARY = "window", "grace period", "cut-off hour", "boundary"
EXCLUSIVE, INCLUSIVE = "exclusive", "inclusive"  # a record exactly the window's age: refused / accepted

_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "eighteen": 18, "twenty-four": 24, "twenty four": 24, "thirty-six": 36,
    "forty-eight": 48, "seventy-two": 72,
}
_NUMBER = r"(\d+(?:\.\d+)?|" + "|".join(sorted(_WORDS, key=len, reverse=True)) + ")"
_HOURS = re.compile(rf"\b{_NUMBER}[\s-]hours?\b", re.IGNORECASE)
_GRACE_AFTER = re.compile(r"^[\s-]*(?:of\s+)?grace\b", re.IGNORECASE)  # "6-hour grace period"
_GRACE_BEFORE = re.compile(r"\bgrace period (?:of|is)\s*(?:up to\s*)?$", re.IGNORECASE)  # "grace period of 6 hours"
# "until 06:00 UTC", "before 06:00 UTC", "After 06:00 UTC": the cut-off; "at 05:00 UTC" is an example instant.
_CUTOFF = re.compile(r"\b(?:until|before|after|by)\s+(\d{1,2}):(\d{2})\s*UTC\b", re.IGNORECASE)
_BOUNDS = (
    (re.compile(rf"\b{_NUMBER}[\s-]hours?\s+or\s+more\b", re.IGNORECASE), EXCLUSIVE),  # refused at N h or more
    (re.compile(rf"\bless\s+than\s+{_NUMBER}[\s-]hours?\b", re.IGNORECASE), EXCLUSIVE),
    (re.compile(rf"\bmore\s+than\s+{_NUMBER}[\s-]hours?\b", re.IGNORECASE), INCLUSIVE),  # refused past N h
    (re.compile(rf"\bolder\s+than\s+{_NUMBER}[\s-]hours?\b", re.IGNORECASE), INCLUSIVE),
    (re.compile(rf"\bat\s+most\s+{_NUMBER}[\s-]hours?\b", re.IGNORECASE), INCLUSIVE),
)
_RELEVANT = re.compile(r"hour|UTC|accept|reject|past|window|grace|day|minute|week", re.IGNORECASE)


class Statement(NamedTuple):
    """One rule found in a doc string."""

    what: str  # WINDOW, GRACE, CUTOFF or BOUNDARY
    value: float | str  # hours, or EXCLUSIVE / INCLUSIVE
    where: str  # which doc string: "BatchMeterUsage" or a member path such as "UsageRecords[].Timestamp"
    quote: str  # the words around it, for the failure message


class TimestampRules(NamedTuple):
    """The timestamp rules the model's docs state for one operation (its doc and its Timestamp members')."""

    operation: str
    texts: list[tuple[str, str]]  # (where, plain text) of every doc string read
    statements: list[Statement]

    def of(self, what: str) -> list[Statement]:
        """The statements of one kind."""
        return [s for s in self.statements if s.what == what]


def plain(doc: str | None) -> str:
    """The doc string as text: tags dropped, entities decoded, white space collapsed."""
    text = html.unescape(re.sub(r"<[^>]+>", " ", doc or ""))
    return re.sub(r"\s+", " ", text).strip()


def _number(word: str) -> float:
    word = re.sub(r"\s+", " ", word.lower())
    return float(_WORDS[word]) if word in _WORDS else float(word)


def _quote(text: str, start: int, end: int) -> str:
    return "…" + text[max(0, start - 40):end + 40].strip() + "…"


def statements(text: str, where: str) -> list[Statement]:
    """Every window, grace period, cut-off hour and boundary stated in ``text`` (plain text)."""
    found: list[Statement] = []
    for match in _HOURS.finditer(text):
        grace = _GRACE_AFTER.match(text[match.end():]) or _GRACE_BEFORE.search(text[:match.start()])
        found.append(Statement(GRACE if grace else WINDOW, _number(match.group(1)), where,
                               _quote(text, match.start(), match.end())))
    for match in _CUTOFF.finditer(text):
        found.append(Statement(CUTOFF, int(match.group(1)) + int(match.group(2)) / 60, where,
                               _quote(text, match.start(), match.end())))
    for pattern, bound in _BOUNDS:
        for match in pattern.finditer(text):
            found.append(Statement(BOUNDARY, bound, where, _quote(text, match.start(), match.end())))
    return found


def _timestamp_docs(shape: Any, path: str, out: list[tuple[str, str]], depth: int = 0) -> None:
    """(path, doc) of every timestamp member reachable from ``shape`` (a botocore Shape)."""
    if depth > 8:  # pragma: no cover - the model has no recursive shapes today
        return
    if shape.type_name == "structure":
        for name, member in shape.members.items():
            where = f"{path}.{name}"
            if member.type_name == "timestamp":
                out.append((where, plain(member.documentation)))
            else:
                _timestamp_docs(member, where, out, depth + 1)
    elif shape.type_name == "list":
        _timestamp_docs(shape.member, f"{path}[]", out, depth + 1)


def timestamp_rules(model: Any, operation: str) -> TimestampRules | None:
    """The rules stated by ``operation``'s doc and its input's Timestamp members' docs (``model``: a botocore
    ServiceModel); None when its input has no timestamp member (so no window applies to it)."""
    op = model.operation_model(operation)
    docs: list[tuple[str, str]] = []
    if op.input_shape is not None:
        _timestamp_docs(op.input_shape, op.input_shape.name, docs)
    if not docs:
        return None
    texts = [(operation, plain(op.documentation)), *docs]
    return TimestampRules(operation, texts, [s for where, text in texts for s in statements(text, where)])


def unreadable(rules: TimestampRules, what: str, why: str) -> str:
    """The failure text for a rule the docs no longer state in words this parser reads."""
    sentences = [f"  [{where}] {sentence}" for where, text in rules.texts
                 for sentence in re.split(r"(?<=[.!?])\s+", text) if _RELEVANT.search(sentence)]
    return (f"{rules.operation}: {why}: the model's doc strings no longer state its timestamp {what} in words "
            f"spec/support/model_docs.py can read. A human must read the new text, decide the rule, update the "
            f"code that enforces it and this parser. The sentences that may state it:\n" + "\n".join(sentences))


def disagreements(rules: TimestampRules, what: str, expected: float | str, ours: str,
                  source: str = "the model's doc of") -> list[str]:
    """One line per statement of ``what`` whose value is not ``expected`` (``ours`` names where that lives);
    when there is no statement of ``what`` at all, the :func:`unreadable` text."""
    found = rules.of(what)
    if not found:
        return [unreadable(rules, what, f"expected {what} {_show(expected)} ({ours}) but found none")]
    return [f"{rules.operation}: {source} {s.where} states a {what} of {_show(s.value)} ({s.quote!r}); "
            f"{ours} is {_show(expected)}" for s in found if s.value != expected]


def _show(value: float | str) -> str:
    if isinstance(value, float):
        return f"{value:g} h"
    return str(value)


def error_status(raw: dict[str, Any]) -> tuple[int, str]:
    """The HTTP status the model implies for an error shape (its raw JSON: ``fault`` is not among botocore's
    Shape.metadata attributes), and what says so: ``error.httpStatusCode``, else 500 for a ``fault`` (a server
    error) and 400 for any other (a client error), as botocore and Smithy's ``@error`` trait have it."""
    stated = (raw.get("error") or {}).get("httpStatusCode")
    if stated is not None:
        return int(stated), "error.httpStatusCode"
    return (500, "fault: true") if raw.get("fault") else (400, "no error trait: a client error")
