"""Validate inputs against the schemas and report every problem at once, by path, never by value.

The schemas in ``schemas/`` stay the single source: each one is compiled, once per process, into a tree
of small check functions for the subset of JSON Schema (draft 2020-12) the schemas use — ``type``,
``properties``, ``required``, ``additionalProperties: false``, ``items``, ``minItems``/``maxItems``,
``minLength``/``maxLength``, ``pattern``, ``minimum``/``maximum``, ``enum``, ``const``, ``format``
(only ``aws-timestamp`` is checked, as before), ``oneOf``, ``allOf``, ``not``, ``if``/``then``/``else`` —
with each keyword's semantics as the JSON Schema 2020-12 validation spec and the jsonschema package
(``jsonschema/_keywords.py``) define them, but for one point where jsonschema departs from the spec: a
``pattern`` is an ECMA-262 regex, whose ``$`` matches only at the very end (jsonschema's ``re.search`` also
lets it match before a trailing newline, so ``"17\\n"`` would pass ``^[0-9]+$``; see :func:`ecma_regex`).
A keyword outside that subset makes compiling fail, so a schema cannot silently gain a rule nobody checks;
spec/connector/test_validation_reference.py compares every answer with jsonschema's own on generated
instances (its ``pattern`` given the ECMA meaning, spec/support/jsonschema_reference.py). (Compiled checks
need no jsonschema import — about 50 ms at start — and run about ten times faster per message.)

Two compilers read the same schema view. The closure tree (``compiled``) finds every failure and says where;
the generated boolean validator (``compiled_valid``, see :class:`_Writer`) only says whether the instance is
valid, about five times faster than the tree, and answers first once a schema is in regular use (its
``GENERATE_AFTER``-th validation in the process): from then on a valid instance — almost every message — never
reaches the tree. Both refuse the same schemas and give the same verdicts (test_validation_reference.py,
test_validation_valid_path.py).

Problems are phrased from the failing keyword and the *constraint*, never from the instance, which could
be a secret or customer data.
"""

from __future__ import annotations

import linecache
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any, NamedTuple

from . import quantity
from .errors import Problem
from .schema import TIMESTAMP_FORMAT, is_timestamp, json_schema

__all__ = ["Failure", "Problem", "batch_problems", "compiled", "compiled_valid", "describe", "ecma_regex", "failures",
           "problems", "request_problems", "valid"]


class Failure(NamedTuple):
    """One failed keyword: where (the instance path), which keyword, its value, and the schema holding it."""

    path: tuple[str | int, ...]
    keyword: str
    limit: Any
    schema: Mapping[str, Any]
    detail: Any = None  # required: the missing member; additionalProperties: the unknown members (sorted)


Path = tuple[str | int, ...]
# A check returns None when the instance passes, else its failures with paths relative to the instance
# (a parent puts its member name or item index in front): a valid instance allocates nothing.
Check = Callable[[Any], list[Failure] | None]

# Keywords that only annotate (the platform's UI reads some of them): no check.
_ANNOTATIONS = frozenset({"title", "description", "default", "deprecated", "examples", "$comment", "$schema",
                          "then", "else",  # then/else are read by `if`
                          "x-rule"})  # a pattern's rule in words, for its error (schemas/config.json)
# Patterns every string matches (the botocore model writes "any string" so): no check needed.
_ANY_STRING = frozenset({"[\\s\\S]*", "^[\\s\\S]*$"})

_TYPE_WORDS = {"integer": "a whole number", "number": "a number", "string": "a string",
               "boolean": "true or false", "array": "a list", "object": "an object"}


def _is_number(value: Any) -> bool:
    kind = type(value)
    return kind is int or kind is float or (isinstance(value, numbers.Number) and not isinstance(value, bool))


def _is_integer(value: Any) -> bool:  # draft 6 and later: 1.0 is an integer
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": _is_number,
    "integer": _is_integer,
}
_PLAIN_TYPES: dict[str, type] = {"string": str, "object": dict, "array": list, "null": type(None)}


def _equal(one: Any, two: Any) -> bool:
    """JSON equality: true and 1 differ, lists and objects compare member by member (jsonschema._utils.equal)."""
    if one is two:
        return True
    if isinstance(one, str) or isinstance(two, str):
        return bool(one == two)
    if isinstance(one, Sequence) and isinstance(two, Sequence):
        return len(one) == len(two) and all(_equal(a, b) for a, b in zip(one, two, strict=True))
    if isinstance(one, Mapping) and isinstance(two, Mapping):
        return one.keys() == two.keys() and all(_equal(one[key], two[key]) for key in one)
    if isinstance(one, bool) or isinstance(two, bool):
        return isinstance(one, bool) and isinstance(two, bool) and one == two
    return bool(one == two)


def _under(key: str | int, found: list[Failure]) -> list[Failure]:
    return [failure._replace(path=(key, *failure.path)) for failure in found]


# One builder per keyword: (keyword value, the schema holding it) -> a check, or None when it cannot fail.

def _type(value: Any, schema: Mapping[str, Any]) -> Check:
    names = value if isinstance(value, list) else [value]
    if all(name in _PLAIN_TYPES for name in names):
        kinds = tuple(_PLAIN_TYPES[name] for name in names)

        def check_plain(instance: Any) -> list[Failure] | None:
            return None if isinstance(instance, kinds) else [Failure((), "type", value, schema)]
        return check_plain
    tests = [_TYPES[name] for name in names]
    test = tests[0] if len(tests) == 1 else lambda instance: any(test(instance) for test in tests)
    if len(tests) == 2:
        first, second = tests
        test = lambda instance: first(instance) or second(instance)  # noqa: E731

    def check(instance: Any) -> list[Failure] | None:
        return None if test(instance) else [Failure((), "type", value, schema)]
    return check


def _properties(value: Any, schema: Mapping[str, Any]) -> Check:
    members = [(name, _compile(sub)) for name, sub in value.items()]
    members = [(name, sub) for name, sub in members if sub is not _nothing]

    def check(instance: Any) -> list[Failure] | None:
        if not isinstance(instance, dict):
            return None
        found = None
        for name, sub in members:
            if name in instance:  # (as jsonschema: `in`, then the member itself)
                failed = sub(instance[name])
                if failed:
                    found = _under(name, failed) + (found or [])
        return found
    return check


def _required(value: Any, schema: Mapping[str, Any]) -> Check | None:
    names = list(value)
    if not names:
        return None

    def check(instance: Any) -> list[Failure] | None:
        if not isinstance(instance, dict):
            return None
        for name in names:
            if name not in instance:
                return [Failure((name,), "required", value, schema, name) for name in names if name not in instance]
        return None
    return check


def _allowed_members(value: Any, schema: Mapping[str, Any]) -> frozenset[Any]:
    """The members ``additionalProperties: false`` allows; raises ValueError on any other form of it."""
    if value is not False or "patternProperties" in schema:
        raise ValueError("only additionalProperties: false (without patternProperties) is supported")
    return frozenset(schema.get("properties", {}))


def _item_schema(value: Any, schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema of every item; raises ValueError on the forms of ``items`` this module does not implement."""
    if not isinstance(value, dict) or "prefixItems" in schema:
        raise ValueError("only items with one schema (no prefixItems) is supported")
    return value


def _additional_properties(value: Any, schema: Mapping[str, Any]) -> Check:
    allowed = _allowed_members(value, schema)

    def check(instance: Any) -> list[Failure] | None:
        if isinstance(instance, dict) and not allowed.issuperset(instance):
            extra = sorted((key for key in instance if key not in allowed), key=str)
            return [Failure((), "additionalProperties", value, schema, extra)]
        return None
    return check


def _items(value: Any, schema: Mapping[str, Any]) -> Check | None:
    sub = _compile(_item_schema(value, schema))
    if sub is _nothing:
        return None

    def check(instance: Any) -> list[Failure] | None:
        if not isinstance(instance, list):
            return None
        found = None
        for index, item in enumerate(instance):
            failed = sub(item)
            if failed:
                found = (found or []) + _under(index, failed)
        return found
    return check


def _bound(keyword: str, applies: Callable[[Any], bool], fails: Callable[[Any, Any], bool],
           never: Any = None) -> Callable[[Any, Mapping[str, Any]], Check | None]:
    def build(value: Any, schema: Mapping[str, Any]) -> Check | None:
        if never is not None and value == never:
            return None  # minLength 0, minItems 0

        def check(instance: Any) -> list[Failure] | None:
            if applies(instance) and fails(instance, value):
                return [Failure((), keyword, value, schema)]
            return None
        return check
    return build


def ecma_regex(pattern: str) -> str:
    """``pattern`` (an ECMA-262 regular expression, as JSON Schema's ``pattern`` is) as a Python regex that matches
    the same strings with ``re.search``: each ``$`` that is an anchor becomes ``\\Z``.

    Without the multiline flag an ECMA ``$`` matches only at the very end of the input, Python's also before a
    trailing newline: ``^[0-9]+$`` would take ``"17\\n"``, which AWS refuses. A ``$`` escaped (``\\$``) or inside a
    character class (``[$]``) is a literal and stays. A class opening with ``]`` (``[]...]``, ``[^]...]``) reads
    differently in the two dialects (ECMA: the empty class, or any character), so it raises ValueError.
    The other dialect differences (Python's ``\\d``, ``\\w`` and ``\\s`` take Unicode beyond ECMA's) are not translated.
    """
    out: list[str] = []
    index, end, in_class = 0, len(pattern), False
    while index < end:
        char = pattern[index]
        if char == "\\":  # an escape: the next character is never special here (nor a class's end)
            out.append(pattern[index:index + 2])
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            start = index + 2 if pattern.startswith("^", index + 1) else index + 1
            if pattern.startswith("]", start):
                raise ValueError(f"pattern {pattern!r}: a class opening with ']' means different things "
                                 "in ECMA-262 and Python")
            out.append(pattern[index:start])
            index, in_class = start, True
            continue
        elif char == "$":
            char = "\\Z"
        out.append(char)
        index += 1
    return "".join(out)


def _search(pattern: str) -> Callable[[str], Any]:
    """The ``re.search`` of ``pattern`` with ECMA-262's meaning (:func:`ecma_regex`)."""
    return re.compile(ecma_regex(pattern)).search


def _pattern(value: Any, schema: Mapping[str, Any]) -> Check | None:
    if value in _ANY_STRING:
        return None
    search = _search(value)

    def check(instance: Any) -> list[Failure] | None:
        if isinstance(instance, str) and not search(instance):
            return [Failure((), "pattern", value, schema)]
        return None
    return check


def _enum(value: Any, schema: Mapping[str, Any]) -> Check:
    options = list(value)

    def check(instance: Any) -> list[Failure] | None:
        if not any(_equal(option, instance) for option in options):
            return [Failure((), "enum", value, schema)]
        return None
    return check


def _const(value: Any, schema: Mapping[str, Any]) -> Check:
    def check(instance: Any) -> list[Failure] | None:
        return None if _equal(instance, value) else [Failure((), "const", value, schema)]
    return check


def _format(value: Any, schema: Mapping[str, Any]) -> Check | None:
    if value != TIMESTAMP_FORMAT:
        return None  # other formats (date-time in the output schemas) annotate only

    def check(instance: Any) -> list[Failure] | None:
        return None if is_timestamp(instance) else [Failure((), "format", value, schema)]
    return check


def _one_of(value: Any, schema: Mapping[str, Any]) -> Check:
    branches = [_compile(sub) for sub in value]

    def check(instance: Any) -> list[Failure] | None:
        passed = 0
        for branch in branches:
            if not branch(instance):
                passed += 1
        return None if passed == 1 else [Failure((), "oneOf", value, schema)]
    return check


def _all_of(value: Any, schema: Mapping[str, Any]) -> Check:
    return _together([_compile(sub) for sub in value])


def _not(value: Any, schema: Mapping[str, Any]) -> Check:
    negated = _compile(value)

    def check(instance: Any) -> list[Failure] | None:
        return None if negated(instance) else [Failure((), "not", value, schema)]
    return check


def _if(value: Any, schema: Mapping[str, Any]) -> Check:
    condition = _compile(value)
    then = _compile(schema["then"]) if "then" in schema else _nothing
    otherwise = _compile(schema["else"]) if "else" in schema else _nothing

    def check(instance: Any) -> list[Failure] | None:
        return otherwise(instance) if condition(instance) else then(instance)
    return check


_KEYWORDS: dict[str, Callable[[Any, Mapping[str, Any]], Check | None]] = {
    "type": _type, "properties": _properties, "required": _required,
    "additionalProperties": _additional_properties, "items": _items,
    "minItems": _bound("minItems", lambda v: isinstance(v, list), lambda v, n: len(v) < n, never=0),
    "maxItems": _bound("maxItems", lambda v: isinstance(v, list), lambda v, n: len(v) > n),
    "minLength": _bound("minLength", lambda v: isinstance(v, str), lambda v, n: len(v) < n, never=0),
    "maxLength": _bound("maxLength", lambda v: isinstance(v, str), lambda v, n: len(v) > n),
    "minimum": _bound("minimum", _is_number, lambda v, n: v < n),
    "maximum": _bound("maximum", _is_number, lambda v, n: v > n),
    "pattern": _pattern, "enum": _enum, "const": _const, "format": _format,
    "oneOf": _one_of, "allOf": _all_of, "not": _not, "if": _if,
}


def _nothing(instance: Any) -> list[Failure] | None:
    return None


def _together(checks: list[Check]) -> Check:
    """One check running ``checks`` on the same instance and joining their failures."""
    checks = [check for check in checks if check is not _nothing]
    if not checks:
        return _nothing
    if len(checks) == 1:
        return checks[0]

    def node(instance: Any) -> list[Failure] | None:
        found = None
        for check in checks:
            failed = check(instance)
            if failed:
                found = failed if found is None else found + failed
        return found
    return node


_LEAF = frozenset({"type", "minLength", "maxLength", "pattern", "minimum", "maximum", "format"})


def _leaf(schema: Mapping[str, Any]) -> Check:
    """A scalar's checks fused into one function (the same rules as the keywords' own checks)."""
    kind = _type(schema["type"], schema) if "type" in schema else _nothing
    min_length, max_length = schema.get("minLength", 0), schema.get("maxLength")
    pattern = schema.get("pattern")
    search = _search(pattern) if pattern is not None and pattern not in _ANY_STRING else None
    minimum, maximum = schema.get("minimum"), schema.get("maximum")
    bounded = minimum is not None or maximum is not None
    timestamp = schema.get("format") == TIMESTAMP_FORMAT

    def check(instance: Any) -> list[Failure] | None:
        found = kind(instance)
        if timestamp and not is_timestamp(instance):
            found = [*(found or []), Failure((), "format", TIMESTAMP_FORMAT, schema)]
        if isinstance(instance, str):
            if len(instance) < min_length:
                found = [*(found or []), Failure((), "minLength", min_length, schema)]
            if max_length is not None and len(instance) > max_length:
                found = [*(found or []), Failure((), "maxLength", max_length, schema)]
            if search is not None and not search(instance):
                found = [*(found or []), Failure((), "pattern", pattern, schema)]
        elif bounded and _is_number(instance):
            if minimum is not None and instance < minimum:
                found = [*(found or []), Failure((), "minimum", minimum, schema)]
            if maximum is not None and instance > maximum:
                found = [*(found or []), Failure((), "maximum", maximum, schema)]
        return found
    return check


def _rules_of(schema: Any) -> dict[str, Any]:
    """The rule keywords of one schema node (empty when it accepts everything); raises ValueError on a node
    or keyword this module does not implement. Both compilers (the closures and the boolean validator) start here.
    """
    if schema is True or schema == {}:
        return {}
    if not isinstance(schema, dict):
        raise ValueError(f"unsupported schema {type(schema).__name__}")
    unknown = sorted(set(schema) - set(_KEYWORDS) - _ANNOTATIONS)
    if unknown:
        raise ValueError(f"unsupported JSON Schema keyword(s) {', '.join(unknown)}")
    return {key: value for key, value in schema.items() if key not in _ANNOTATIONS}


def _compile(schema: Any) -> Check:
    """The check of one schema node; raises ValueError on a keyword this module does not implement."""
    rules = _rules_of(schema)
    if not rules:
        return _nothing
    if rules.keys() <= _LEAF:
        return _leaf(schema)
    return _together([check for key, value in rules.items()
                      for check in [_KEYWORDS[key](value, schema)] if check is not None])


@cache
def compiled(schema_name: str) -> Check:
    """The compiled check of ``schemas/<schema_name>`` (cached per process)."""
    return _compile(json_schema(schema_name))


# The valid path: a generated boolean validator per schema -------------------------------------------------------

# parse_timestamp accepts every plain int in [0, this): below 1e11 as epoch seconds, from 1e11 on as epoch
# milliseconds up to the year 10000 (253402300800 s). The boolean validator answers those ints at once and asks
# is_timestamp about everything else (spec/connector/test_validation_valid_path.py checks both sides of the bound).
_EPOCH_LIMIT = 253_402_300_800 * 1000
# Patterns a string matches exactly when it is not empty: for a plain str, its truth value decides.
_NONEMPTY_STRING = frozenset({"[\\s\\S]+", "^[\\s\\S]+$"})
# Below this depth of members and items a node is written inline into its parent, from it on as a function
# of its own: the generated source never nests deeper than Python compiles.
_INLINE_DEPTH = 8

# Per type name, (a quick test of the common exact types, the full rule — the same as _TYPES — or None when the
# quick test is the rule), as expressions about the value in {v}.
_TYPE_TESTS: dict[str, tuple[str, str | None]] = {
    "string": ("type({v}) is str", "isinstance({v}, str)"), "object": ("type({v}) is dict", "isinstance({v}, dict)"),
    "array": ("type({v}) is list", "isinstance({v}, list)"), "boolean": ("isinstance({v}, bool)", None),
    "null": ("{v} is None", None), "integer": ("type({v}) is int", "_is_integer({v})"),
    "number": ("type({v}) is int or type({v}) is float", "_is_number({v})"),
}


def _among(value: Any, options: Sequence[Any]) -> bool:
    """``enum``: the value equals one of the options (JSON equality, as the closures' _enum)."""
    return any(_equal(option, value) for option in options)


def _type_test(names: list[Any], v: str) -> str:
    """The expression true when the value in ``v`` has one of the types: every quick test first, then the rules."""
    tests = [_TYPE_TESTS[name] for name in names]
    expressions = [quick for quick, _ in tests] + [rule for _, rule in tests if rule is not None]
    return " or ".join(expressions).format(v=v) or "False"


def _indent(lines: list[str]) -> list[str]:
    return ["    " + line for line in lines]


def _guarded(known: str | None, kinds: tuple[str, ...], guard: str, lines: list[str]) -> list[str]:
    """Rules about values of ``kinds``: as they are when the value is known to be of ``kinds``, left out when it is
    known to be of another type, else under ``if guard:``."""
    if not lines or (known is not None and known not in kinds):
        return []
    return lines if known in kinds else [f"if {guard}:", *_indent(lines)]


class _Writer:
    """Writes the Python source of a schema's boolean validator. Why it exists: speed on the valid path.

    Almost every message is valid, and on a valid message the closure tree above costs a Python call per keyword
    and per member (about 70 µs for a body of 25 usage records). The same rules written out as straight-line code
    — nested ``if``/``for`` statements that follow the schema's nesting and ``return False`` at the first broken
    rule — answer "valid or not?" about five times faster. The closure tree stays the one that explains failures:
    :func:`failures` and :func:`problems` run it only when the generated function says the instance is invalid
    (or while a schema has been used fewer than ``GENERATE_AFTER`` times, before its function is written).

    Each keyword is written with the guards and the rule of the closure builder of the same name (``minimum``
    applies to numbers only, ``pattern`` searches, ``enum`` compares with _equal, ...), testing the common exact
    types first (``type(x) is int`` before the isinstance-based rules, which subclasses still reach). Values from
    the schema become source text only as plain ints and strings written with repr(); anything else (compiled
    patterns, sets of member names, enum options, floats) goes into the generated code's namespace under a name.
    A node is written inline into its parent; a node in a boolean position (a ``oneOf`` branch, ``not``, an ``if``
    condition) becomes an expression: a presence test for a ``required``-only node, else a call of a function of
    its own. To read what a schema became: ``print(_generate(json_schema(name))[0])``.
    """

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {"_EPOCH_LIMIT": _EPOCH_LIMIT, "_among": _among, "_equal": _equal,
                                          "_is_integer": _is_integer, "_is_number": _is_number,
                                          "_timestamp": is_timestamp}
        self.functions: list[str] = []  # the source of each finished function
        self.count = 0

    def name(self, value: Any, stem: str) -> str:
        """Put ``value`` into the namespace; the source refers to it by the name returned."""
        name = f"_{stem}{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def literal(self, value: Any) -> str:
        """``value`` as source text: a plain int or str by repr(), anything else by a name in the namespace."""
        return repr(value) if type(value) in (int, str) else self.name(value, "const")

    def function(self, schema: Any) -> str:
        """Write ``def _validN(x0) -> bool`` for ``schema``; return its name."""
        self.count += 1
        name = f"_valid{self.count}"
        body = self.statements(schema, "x0", 0)
        self.functions.append("\n".join([f"def {name}(x0):", *_indent(body), "    return True", ""]))
        return name

    def statements(self, schema: Any, v: str, depth: int, known: str | None = None) -> list[str]:
        """Statements that ``return False`` when the value in variable ``v`` breaks ``schema``.

        Members and items of that value go into ``x{depth + 1}``; ``known`` is the type name the value is already
        known to have (None when unknown).
        """
        rules = _rules_of(schema)
        if not rules:
            return []
        if depth >= _INLINE_DEPTH:
            return [f"if not {self.function(schema)}({v}): return False"]
        out = []
        if "type" in rules:
            names = rules["type"] if isinstance(rules["type"], list) else [rules["type"]]
            out.append(f"if not ({_type_test(names, v)}): return False")
            known = names[0] if len(names) == 1 else known
        # (each group is written before it is guarded: a sub-schema is refused even where its rules cannot apply)
        out += _guarded(known, ("string",), f"isinstance({v}, str)", self.string_rules(rules, v))
        out += _guarded(known, ("integer", "number"), _type_test(["number"], v), self.number_rules(rules, v))
        out += _guarded(known, ("array",), f"isinstance({v}, list)", self.array_rules(rules, schema, v, depth))
        out += _guarded(known, ("object",), f"isinstance({v}, dict)", self.object_rules(rules, schema, v, depth))
        return out + self.any_rules(rules, schema, v, depth, known)

    def string_rules(self, rules: dict[str, Any], v: str) -> list[str]:
        out = []
        if rules.get("minLength", 0) != 0:
            out.append(f"if len({v}) < {self.literal(rules['minLength'])}: return False")
        if "maxLength" in rules:
            out.append(f"if len({v}) > {self.literal(rules['maxLength'])}: return False")
        pattern: Any = rules.get("pattern")
        if "pattern" in rules and pattern not in _ANY_STRING:
            search = self.name(_search(pattern), "search")
            if pattern in _NONEMPTY_STRING:
                out.append(f"if not ({v} if type({v}) is str else {search}({v})): return False")
            else:
                out.append(f"if not {search}({v}): return False")
        return out

    def number_rules(self, rules: dict[str, Any], v: str) -> list[str]:
        return [f"if {v} {operator} {self.literal(rules[keyword])}: return False"
                for keyword, operator in (("minimum", "<"), ("maximum", ">")) if keyword in rules]

    def array_rules(self, rules: dict[str, Any], schema: dict[str, Any], v: str, depth: int) -> list[str]:
        out = []
        if rules.get("minItems", 0) != 0:
            out.append(f"if len({v}) < {self.literal(rules['minItems'])}: return False")
        if "maxItems" in rules:
            out.append(f"if len({v}) > {self.literal(rules['maxItems'])}: return False")
        if "items" in rules:
            item = f"x{depth + 1}"
            body = self.statements(_item_schema(rules["items"], schema), item, depth + 1)
            if body:
                out += [f"for {item} in {v}:", *_indent(body)]
        return out

    def object_rules(self, rules: dict[str, Any], schema: dict[str, Any], v: str, depth: int) -> list[str]:
        out = []
        names = list(rules.get("required", []))
        if names:
            out.append("if " + " or ".join(f"{self.literal(name)} not in {v}" for name in names) + ": return False")
        if "additionalProperties" in rules:
            allowed = self.name(_allowed_members(rules["additionalProperties"], schema), "allowed")
            out.append(f"if not {allowed}.issuperset({v}): return False")
        member = f"x{depth + 1}"
        for name, sub in rules.get("properties", {}).items():
            body = self.statements(sub, member, depth + 1)
            if not body:
                continue
            key = self.literal(name)
            if name in names:  # there: `required` above said so
                out += [f"{member} = {v}[{key}]", *body]
            else:  # only a member that is there is checked
                out += [f"if {key} in {v}:", f"    {member} = {v}[{key}]", *_indent(body)]
        return out

    def any_rules(self, rules: dict[str, Any], schema: dict[str, Any], v: str, depth: int,
                  known: str | None) -> list[str]:
        """The rules about values of any type: enum, const, format, and the ones combining schemas."""
        out = []
        if "enum" in rules:
            out.append(self.enum_rule(rules["enum"], v))
        if "const" in rules:
            out.append(f"if not _equal({v}, {self.literal(rules['const'])}): return False")
        if rules.get("format") == TIMESTAMP_FORMAT:
            out.append(f"if not ((type({v}) is int and 0 <= {v} < _EPOCH_LIMIT) or _timestamp({v})): return False")
        if "oneOf" in rules:  # the number of branches passed must be 1
            passed = " + ".join(self.expression(sub, v, known) for sub in rules["oneOf"]) or "0"
            out.append(f"if {passed} != 1: return False")
        for sub in rules.get("allOf", []):
            out += self.statements(sub, v, depth + 1, known)
        if "not" in rules:
            out.append(f"if {self.expression(rules['not'], v, known)}: return False")
        if "if" in rules:
            condition = self.expression(rules["if"], v, known)
            then = self.statements(schema["then"], v, depth + 1, known) if "then" in schema else []
            otherwise = self.statements(schema["else"], v, depth + 1, known) if "else" in schema else []
            if otherwise:
                out += [f"if {condition}:", *_indent(then or ["pass"]), "else:", *_indent(otherwise)]
            elif then:
                out += [f"if {condition}:", *_indent(then)]
        return out

    def enum_rule(self, value: Any, v: str) -> str:
        options = tuple(value)
        everything = self.name(options, "options")
        if options and all(type(option) is str for option in options):
            # a plain str equals a string option exactly when it is in the set of them
            strings = self.name(frozenset(options), "strings")
            return f"if not ({v} in {strings} if type({v}) is str else _among({v}, {everything})): return False"
        return f"if not _among({v}, {everything}): return False"

    def expression(self, schema: Any, v: str, known: str | None) -> str:
        """An expression, True or False, saying whether the value in ``v`` passes ``schema``."""
        rules = _rules_of(schema)
        if not rules:
            return "True"
        if rules.keys() == {"required"}:  # e.g. a oneOf of members: present, all of them
            present = " and ".join(f"{self.literal(name)} in {v}" for name in rules["required"]) or "True"
            return f"({present})" if known == "object" else f"(not isinstance({v}, dict) or {present})"
        return f"{self.function(schema)}({v})"


def _generate(schema: Any) -> tuple[str, str, dict[str, Any]]:
    """The source of ``schema``'s boolean validator, the name of its entry function, and its namespace."""
    writer = _Writer()
    entry = writer.function(schema)
    return "\n".join(reversed(writer.functions)), entry, writer.namespace


def _compile_valid(schema: Any, label: str = "schema") -> Callable[[Any], bool]:
    """``schema``'s boolean validator (raises ValueError where :func:`_compile` does)."""
    source, entry, namespace = _generate(schema)
    filename = f"<valid {label}>"
    exec(compile(source, filename, "exec"), namespace)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # readable tracebacks
    function: Callable[[Any], bool] = namespace[entry]
    return function


@cache
def compiled_valid(schema_name: str) -> Callable[[Any], bool]:
    """The generated boolean validator of ``schemas/<schema_name>`` (cached per process): True when valid."""
    return _compile_valid(json_schema(schema_name), schema_name)


def valid(schema_name: str, instance: Any) -> bool:
    """Whether ``instance`` is valid: the same answer as ``not failures(...)``, without the failures."""
    return compiled_valid(schema_name)(instance)


# Generating and compiling a schema's boolean validator takes about a millisecond, the cost of some fifty
# validations by the closure tree. So a schema's first validations in a process go to the closure tree alone
# (a step's configuration is validated once, and a process that handles one message should not pay for
# code it will not use again); from the GENERATE_AFTER-th on, the generated function answers first.
GENERATE_AFTER = 8
_uses: dict[str, int] = {}
_quick: dict[str, Callable[[Any], bool]] = {}  # the generated functions of the schemas in regular use


def _quick_check(schema_name: str) -> Callable[[Any], bool] | None:
    """The schema's boolean validator once the schema is in regular use, else None (counts the use)."""
    quick = _quick.get(schema_name)
    if quick is None:
        uses = _uses[schema_name] = _uses.get(schema_name, 0) + 1  # (a lost count under threads is harmless)
        if uses < GENERATE_AFTER:
            return None
        quick = _quick[schema_name] = compiled_valid(schema_name)
    return quick


def failures(schema_name: str, instance: Any) -> list[Failure]:
    """Every failed keyword of ``instance`` (empty when valid), in no particular order."""
    quick = _quick_check(schema_name)
    if quick is not None and quick(instance):
        return []
    return compiled(schema_name)(instance) or []


def _path(parts: Sequence[str | int]) -> str:
    return "/" + "/".join(str(part) for part in parts) if parts else "/"


_PHRASES = {
    "minLength": "must have length greater than or equal to {}",
    "maxLength": "must have length less than or equal to {}",
    "pattern": "must match the pattern {}",
    "minimum": "must be greater than or equal to {}",
    "maximum": "must be less than or equal to {}",
    "minItems": "must have at least {} item(s)",
    "maxItems": "must have at most {} items",
    "enum": "must be one of {}",
    "const": "must be {}",
}


def _describe(failure: Failure) -> tuple[str, str]:
    """Return (path, problem) phrased from the constraint only."""
    kind, limit, path = failure.keyword, failure.limit, _path(failure.path)
    if kind == "required":
        return path, "is required"
    if kind == "additionalProperties":
        # Field names are schema vocabulary chosen by the mapping, not values; still cap their length.
        names = ", ".join(str(name)[:64] for name in failure.detail)
        return path, f"unknown member(s) {names}; member names are case-sensitive"
    if kind == "oneOf":
        options = [" + ".join(branch.get("required", [])) for branch in limit if isinstance(branch, dict)]
        return path, "needs exactly one of " + ", ".join(options)
    if kind == "type":
        words = limit if isinstance(limit, list) else [limit]
        text = "must be " + " or ".join(_TYPE_WORDS.get(str(w), str(w)) for w in words)
        return path, text + _member_hint(failure.path)
    if kind == "format" and limit == TIMESTAMP_FORMAT:
        return path, "must be ISO-8601 with an offset or Z, epoch seconds or epoch milliseconds"
    if kind == "pattern" and limit in _NONEMPTY_STRING:
        return path, "must not be empty"
    if kind == "pattern" and "x-rule" in failure.schema:  # the rule in words rather than a regular expression
        return path, f"must be {failure.schema['x-rule']}"
    if kind == "maximum":
        return path, _PHRASES[kind].format(limit) + _member_hint(failure.path, too_large=True)
    if kind in _PHRASES:
        return path, _PHRASES[kind].format(limit)
    return path, f"fails the {kind} constraint"


_ACCOUNT_MEMBERS = frozenset({"CustomerAWSAccountId"})  # account ids: digits that must stay text (_member_hint)


def _member_hint(parts: Sequence[str | int], too_large: bool = False) -> str:
    """What to do instead, for a quantity member of the wrong type or too large, or an account id mapped as a
    number (empty when there is nothing to add)."""
    name = str(parts[-1]) if parts else ""
    if name in _ACCOUNT_MEMBERS:
        return "" if too_large else "; map the 12-digit account id as text ($string(...) in a mapping)"
    for members in (quantity.RECORD, quantity.REQUEST, quantity.ALLOCATION):
        if name == members.whole:
            return (f"; give larger quantities in {members.decimal}, as a string such as \"3000000000\""
                    if too_large else
                    f"; for fractional usage give {members.decimal} instead, as a string such as \"2.5\"")
        if name == members.decimal and not too_large:
            return " such as \"17.42\" (a JSON number could lose digits; in a mapping use $string(...))"
    return ""


def problems(schema_name: str, instance: Any) -> list[Problem]:
    """Every schema problem of ``instance``, one per path, sorted by path (empty when valid)."""
    found = failures(schema_name, instance)
    return describe(found) if found else []


def describe(found: Sequence[Failure]) -> list[Problem]:
    """The failures as problems: one per path (its texts joined), sorted by path."""
    by_path: dict[str, set[str]] = {}
    for failure in found:
        path, text = _describe(failure)
        by_path.setdefault(path, set()).add(text)
    return [Problem(path, "; ".join(sorted(texts))) for path, texts in sorted(by_path.items())]


def batch_problems(body: Any, member: str) -> list[Problem]:
    """Batch-wide rules a schema cannot state: quantities of every record, ProductCode vs LicenseArn and
    CustomerIdentifier."""
    if not isinstance(body, dict):
        return []
    records = body.get(member) or []
    found: list[Problem] = []
    for index, record in enumerate(records):
        found += quantity.problems(record, f"/{member}/{index}", quantity.RECORD)
    with_license = [i for i, r in enumerate(records) if isinstance(r, dict) and r.get("LicenseArn")]
    if body.get("ProductCode") and with_license:
        # AWS bills such records twice (botocore 1.44 model, BatchMeterUsageRequest.ProductCode).
        first = with_license[0]
        found.append(Problem("/ProductCode", f"must be left out when records carry a LicenseArn "
                                             f"(/{member}/{first}/LicenseArn and {len(with_license) - 1} more): "
                                             "AWS bills records sent with both twice"))
    legacy = [i for i, r in enumerate(records) if isinstance(r, dict) and "CustomerIdentifier" in r]
    if not body.get("ProductCode") and legacy:
        # "ProductCode is required only for legacy integrations that use CustomerIdentifier" (botocore model,
        # BatchMeterUsageRequest.ProductCode): AWS refuses such a request as a whole.
        first = legacy[0]
        found.append(Problem("/ProductCode", f"is required when records carry a CustomerIdentifier "
                                             f"(/{member}/{first}/CustomerIdentifier and {len(legacy) - 1} more): "
                                             "a legacy record names its product by the request's ProductCode"))
    if not body.get("ProductCode"):
        # Without the request's ProductCode, "the LicenseArn in each UsageRecord identifies both the product and
        # the specific agreement" (same doc string): a record with neither names no product, and AWS refuses it.
        for index, record in enumerate(records):
            if isinstance(record, dict) and "CustomerAWSAccountId" in record and not record.get("LicenseArn"):
                found.append(Problem(f"/{member}/{index}/LicenseArn",
                                     "is required when the request has no ProductCode: it names the product "
                                     "and the agreement the usage is billed to"))
    return found


def request_problems(body: Any) -> list[Problem]:
    """Rules a schema cannot state for a MeterUsage request (its quantity members and allocations)."""
    return quantity.problems(body, "", quantity.REQUEST)
