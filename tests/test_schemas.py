"""chalicelib/schemas.py answers as jsonschema did: on documents generated
from each schema's own names and limits, `validation.validate` gives the
same description and title as the jsonschema-based check it replaced (kept
here as the reference; jsonschema is a test dependency only). And a schema
using a keyword outside the subset is refused, not half-checked."""
import dataclasses
import functools
import json
import string

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings, strategies

from chalicelib import validation
from chalicelib.config import Settings
from chalicelib.errors import BadRequest
from chalicelib.schemas import Schema

SCHEMAS = sorted(path.stem for path in validation.SCHEMA_DIR.glob("*.json"))
# The defaults, and limits a stage could set (smaller, so they are reached).
STAGES = [Settings(), dataclasses.replace(
    Settings(), max_claim_ttl=120, max_claim_grace=90, max_message_ttl=300,
    max_message_delay=5, max_messages_per_post=3, max_messages_post_size=10)]

_Reference = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda checker, value: isinstance(value, int)
        and not isinstance(value, bool)))


@functools.lru_cache
def _reference_validator(name, stage):
    with open(validation.SCHEMA_DIR / f"{name}.json") as schema_file:
        schema = validation.resolve_placeholders(json.load(schema_file), dataclasses.asdict(stage))
    _Reference.check_schema(schema)
    return _Reference(schema)


def reference(name, document, stage):
    """(description, title) as the jsonschema-based check answered; None if valid."""
    errors = sorted(_reference_validator(name, stage).iter_errors(document),
                    key=lambda failure: (len(failure.absolute_path),
                                         str(failure.absolute_path)))
    if not errors:
        return None
    error = errors[0]
    subschema = error.schema if isinstance(error.schema, dict) else {}
    text = subschema.get(f"x-error-{error.validator}", subschema.get("x-error"))
    if text:
        key = error.absolute_path[-1] if error.absolute_path else ""
        text = text.format(value=error.instance, key=key, **dataclasses.asdict(stage))
    title = subschema.get(f"x-title-{error.validator}", subschema.get("x-title"))
    refused = BadRequest(text or error.message, title=title)
    return refused.description, refused.title


def answered(name, document, stage):
    try:
        validation.validate(name, document, stage)
    except BadRequest as refused:
        return refused.description, refused.title
    return None


def _walk(node, names, values):
    """The member names and the literal values a schema mentions."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("properties", "$defs"):
                names.update(value)
            elif key == "required":
                names.update(value)
            elif key in ("enum", "const", "minimum", "maximum", "minItems", "maxItems"):
                for literal in value if isinstance(value, list) else [value]:
                    values.add(literal)
                    if isinstance(literal, int) and not isinstance(literal, bool):
                        values.update({literal - 1, literal + 1, float(literal)})
            _walk(value, names, values)
    elif isinstance(node, list):
        for item in node:
            _walk(item, names, values)


def documents(name, stage):
    """JSON documents shaped by the schema: objects keyed by its names, its
    literals and their neighbours, and any other JSON value."""
    with open(validation.SCHEMA_DIR / f"{name}.json") as schema_file:
        schema = validation.resolve_placeholders(json.load(schema_file), dataclasses.asdict(stage))
    names, values = set(), {0, 60, "x"}
    _walk(schema, names, values)
    names.update({"Client-ID", "X-Project-ID", "/metadata/a", "other"})
    scalars = strategies.one_of(
        strategies.sampled_from(sorted(values, key=repr)),
        strategies.sampled_from(["/metadata/key", "/meta/a~2", "q.1", "", "a" * 65,
                                 "/a/b/c", "linear", "add", "/metadata/k~1x"]),
        strategies.none(), strategies.booleans(), strategies.integers(-5, 10 ** 12),
        strategies.floats(allow_nan=False, allow_infinity=False),
        strategies.text(string.printable, max_size=8))
    keys = strategies.one_of(strategies.sampled_from(sorted(names)),
                             strategies.text(max_size=4))
    return strategies.recursive(
        scalars, lambda inner: strategies.one_of(
            strategies.lists(inner, max_size=4),
            strategies.dictionaries(keys, inner, max_size=6)),
        max_leaves=24)


@pytest.mark.parametrize("stage", STAGES, ids=["defaults", "small-limits"])
@pytest.mark.parametrize("name", SCHEMAS)
def test_answers_as_jsonschema_did(name, stage):
    @settings(max_examples=200, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(documents(name, stage))
    def same_answer(document):
        assert answered(name, document, stage) == reference(name, document, stage)
    same_answer()


@pytest.mark.parametrize("name,document", [
    ("messages_post", {"messages": [{"body": 1, "ttl": 59}, "x", {"ttl": "a"}]}),
    ("messages_post", {"messages": []}),
    ("queue_patch", [{"op": "add", "path": "/metadata/a"}, {"path": 1}]),
    ("queue_metadata", {"_retry_policy": {"minimum_delay": "1",
                                          "retry_backoff_function": "cubic"}}),
    ("ws_request", {"action": "message_get", "headers": {"Client-ID": "c",
                                                         "X-Project-ID": "p"},
                    "body": {"queue_name": 1}}),
])
def test_known_failures_answer_as_jsonschema_did(name, document):
    assert answered(name, document, Settings()) is not None
    assert answered(name, document, Settings()) == reference(name, document, Settings())


@pytest.mark.parametrize("schema", [
    {"type": "object", "patternProperties": {"^x-": {}}},
    {"properties": {"a": {"oneOf": [{"type": "string"}]}}},
    {"type": "integr"},
    {"$ref": "#/$defs/missing"},
    {"minimum": "$max_unknown_setting"},
])
def test_a_schema_outside_the_subset_is_refused(schema):
    with pytest.raises(ValueError):
        Schema(schema)
