"""The part of JSON Schema (draft 2020-12) that `schemas/` is written in,
checked as jsonschema 4 checks it, with its wording where a schema gives
none (tests/test_schemas.py compares the two on generated documents).

Why not jsonschema itself: importing it cost about 120 ms of a Lambda's
cold start, and its compiled `rpds-py` wheel was half the package and bound
to one architecture. A schema is read once per settings and checked for
keywords outside this subset, which are refused rather than ignored.
"""
import collections
import numbers
import re
from dataclasses import dataclass

TYPES = {
    "object": lambda value: isinstance(value, dict),
    "array": lambda value: isinstance(value, list),
    "string": lambda value: isinstance(value, str),
    "boolean": lambda value: isinstance(value, bool),
    "null": lambda value: value is None,
    "number": lambda value: isinstance(value, numbers.Number) and not isinstance(value, bool),
    # Zaqar checks isinstance(value, int): 60.0 is not an integer there.
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
}
# Keywords with no effect on the result.
ANNOTATIONS = {"$comment", "$defs", "title", "description"}
DEFS_REF = re.compile(r"#/\$defs/([^/~]+)")


@dataclass(frozen=True)
class Failure:
    """Where a document fails: the keyword, the (sub)schema holding it, the
    failing value, its path from the document's root, jsonschema's words."""
    keyword: str
    schema: dict
    instance: object
    path: tuple
    message: str


def _equal(one, two):
    """JSON equality: True is not 1, 1 is 1.0, lists and objects compared
    member by member."""
    if isinstance(one, str) or isinstance(two, str):
        return one == two
    if isinstance(one, list) and isinstance(two, list):
        return len(one) == len(two) and all(map(_equal, one, two))
    if isinstance(one, dict) and isinstance(two, dict):
        return one.keys() == two.keys() and all(_equal(one[key], two[key]) for key in one)
    if isinstance(one, bool) or isinstance(two, bool):
        return type(one) is type(two) and one == two
    return one == two


def _identity(value):
    """What JSON equality (_equal) compares, as a hashable value: so that
    uniqueItems takes one pass over a list, however long."""
    if isinstance(value, bool) or value is None:
        return ("literal", value)
    if isinstance(value, numbers.Number):
        return ("number", value)  # 1 and 1.0 hash alike and are equal
    if isinstance(value, list):
        return ("array", tuple(map(_identity, value)))
    if isinstance(value, dict):
        return ("object", frozenset((key, _identity(item)) for key, item in value.items()))
    return ("string", value)


class Schema:
    """One schema document, checked once: `failures(document)` lists where
    the document fails, in jsonschema's order."""

    def __init__(self, document):
        self.root = document
        self._check(document)

    # -- checking the schema --------------------------------------------

    def _check(self, schema):
        if not isinstance(schema, dict):
            raise ValueError(f"a schema must be an object: {schema!r}")
        for keyword, value in schema.items():
            if keyword.startswith("x-") or keyword in ANNOTATIONS:
                continue
            if keyword not in self.CHECKS:
                raise ValueError(f"keyword {keyword!r} is not supported")
            if keyword == "type":
                names = value if isinstance(value, list) else [value]
                if not names or any(name not in TYPES for name in names):
                    raise ValueError(f"unknown type {value!r}")
            elif keyword in ("properties", "$defs"):
                for subschema in value.values():
                    self._check(subschema)
            elif keyword in ("items", "if", "then") or (
                    keyword == "additionalProperties" and not isinstance(value, bool)):
                self._check(value)
            elif keyword == "allOf":
                for subschema in value:
                    self._check(subschema)
            elif keyword == "$ref":
                self._target(value)
            elif keyword == "pattern":
                re.compile(value)
            elif keyword in ("minimum", "maximum", "minItems", "maxItems", "minLength",
                             "maxLength"):
                if not TYPES["number"](value):
                    raise ValueError(f"{keyword} must be a number, not {value!r}")

    def _target(self, ref):
        match = DEFS_REF.fullmatch(ref) if isinstance(ref, str) else None
        if not match or match[1] not in self.root.get("$defs", {}):
            raise ValueError(f"$ref {ref!r} names nothing under $defs")
        return self.root["$defs"][match[1]]

    # -- checking a document --------------------------------------------

    def failures(self, document):
        return list(self._failures(self.root, document, ()))

    def _failures(self, schema, instance, path):
        for keyword, value in schema.items():
            check = self.CHECKS.get(keyword)
            if check is not None:
                yield from check(self, value, instance, schema, path)

    def _valid(self, schema, instance, path):
        return next(self._failures(schema, instance, path), None) is None

    def _type(self, names, instance, schema, path):
        names = names if isinstance(names, list) else [names]
        if not any(TYPES[name](instance) for name in names):
            yield Failure("type", schema, instance, path,
                          f"{instance!r} is not of type {', '.join(map(repr, names))}")

    def _properties(self, properties, instance, schema, path):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if name in instance:
                    yield from self._failures(subschema, instance[name], (*path, name))

    def _required(self, names, instance, schema, path):
        if isinstance(instance, dict):
            for name in names:
                if name not in instance:
                    yield Failure("required", schema, instance, path,
                                  f"{name!r} is a required property")

    def _items(self, items, instance, schema, path):
        if isinstance(instance, list):
            for index, item in enumerate(instance):
                yield from self._failures(items, item, (*path, index))

    def _too_short(keyword, kind):  # minItems of lists, minLength of strings
        def check(self, least, instance, schema, path):
            if isinstance(instance, kind) and len(instance) < least:
                words = "should be non-empty" if least == 1 else "is too short"
                yield Failure(keyword, schema, instance, path, f"{instance!r} {words}")
        return check

    def _too_long(keyword, kind):  # maxItems of lists, maxLength of strings
        def check(self, most, instance, schema, path):
            if isinstance(instance, kind) and len(instance) > most:
                words = "is expected to be empty" if most == 0 else "is too long"
                yield Failure(keyword, schema, instance, path, f"{instance!r} {words}")
        return check

    _min_items, _max_items = _too_short("minItems", list), _too_long("maxItems", list)
    _min_length, _max_length = _too_short("minLength", str), _too_long("maxLength", str)

    def _unique_items(self, unique, instance, schema, path):
        if unique and isinstance(instance, list) and (
                len({_identity(item) for item in instance}) < len(instance)):
            yield Failure("uniqueItems", schema, instance, path,
                          f"{instance!r} has non-unique elements")

    def _additional_properties(self, allowed, instance, schema, path):
        if not isinstance(instance, dict):
            return
        extras = [name for name in instance if name not in schema.get("properties", {})]
        if isinstance(allowed, dict):
            for name in extras:
                yield from self._failures(allowed, instance[name], (*path, name))
        elif not allowed and extras:
            verb = "was" if len(extras) == 1 else "were"
            names = ", ".join(repr(name) for name in sorted(extras, key=str))
            yield Failure("additionalProperties", schema, instance, path,
                          f"Additional properties are not allowed ({names} {verb} unexpected)")

    def _minimum(self, least, instance, schema, path):
        if TYPES["number"](instance) and instance < least:
            yield Failure("minimum", schema, instance, path,
                          f"{instance!r} is less than the minimum of {least!r}")

    def _maximum(self, most, instance, schema, path):
        if TYPES["number"](instance) and instance > most:
            yield Failure("maximum", schema, instance, path,
                          f"{instance!r} is greater than the maximum of {most!r}")

    def _enum(self, values, instance, schema, path):
        if not any(_equal(value, instance) for value in values):
            yield Failure("enum", schema, instance, path,
                          f"{instance!r} is not one of {values!r}")

    def _const(self, value, instance, schema, path):
        if not _equal(instance, value):
            yield Failure("const", schema, instance, path, f"{value!r} was expected")

    def _pattern(self, pattern, instance, schema, path):
        if isinstance(instance, str) and not re.search(pattern, instance):
            yield Failure("pattern", schema, instance, path,
                          f"{instance!r} does not match {pattern!r}")

    def _all_of(self, subschemas, instance, schema, path):
        for subschema in subschemas:
            yield from self._failures(subschema, instance, path)

    def _if(self, condition, instance, schema, path):
        if "then" in schema and self._valid(condition, instance, path):
            yield from self._failures(schema["then"], instance, path)

    def _then(self, then, instance, schema, path):
        return ()  # applied by "if"

    def _ref(self, ref, instance, schema, path):
        yield from self._failures(self._target(ref), instance, path)

    CHECKS = {"type": _type, "properties": _properties, "required": _required,
              "items": _items, "minItems": _min_items, "maxItems": _max_items,
              "minimum": _minimum, "maximum": _maximum, "enum": _enum, "const": _const,
              "pattern": _pattern, "allOf": _all_of, "if": _if, "then": _then,
              "$ref": _ref, "uniqueItems": _unique_items, "minLength": _min_length,
              "maxLength": _max_length, "additionalProperties": _additional_properties}


def shallowest(failures):
    """The failure to report: the shallowest, as jsonschema's paths sort
    (a wrong container type is named before anything inside it)."""
    return min(failures, key=lambda failure: (
        len(failure.path), str(collections.deque(failure.path))), default=None)
