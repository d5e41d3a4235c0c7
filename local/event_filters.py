"""Lambda event filtering (FilterCriteria patterns), for the local stream pollers.

The deployed stream event sources get their patterns from the `stream_filters`
key of a function's `lambda_functions` section in .chalice/config.json
(infra/package.py). Locally the same patterns decide which records reach the
handler, so a handler never sees records AWS would have filtered out.

A pattern is a dict: every key must match (nested dicts recurse); a list of
matchers matches if any does. Matchers: literal values, and {"prefix"},
{"suffix"}, {"equals-ignore-case"}, {"anything-but"}, {"numeric"}, {"exists"}.
"""
import operator

_MISSING = object()
_NUMERIC = {"<": operator.lt, "<=": operator.le, "=": operator.eq,
            ">": operator.gt, ">=": operator.ge}


def matches_any(patterns, record):
    """True if there are no patterns or one of them matches the record."""
    return not patterns or any(matches(pattern, record) for pattern in patterns)


def matches(pattern, value):
    return all(_matches_rule(rule, value.get(key, _MISSING) if isinstance(value, dict)
                             else _MISSING)
               for key, rule in pattern.items())


def _matches_rule(rule, value):
    if isinstance(rule, dict):
        return isinstance(value, dict) and matches(rule, value)
    values = value if isinstance(value, list) else [value]
    return any(_matches_one(matcher, item) for matcher in rule for item in values)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _matches_one(matcher, value):
    if not isinstance(matcher, dict):
        return value is not _MISSING and value == matcher
    (kind, argument), = matcher.items()
    if kind == "exists":
        return (value is not _MISSING) == argument
    if value is _MISSING:
        return False
    if kind == "prefix":
        return isinstance(value, str) and value.startswith(argument)
    if kind == "suffix":
        return isinstance(value, str) and value.endswith(argument)
    if kind == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == argument.lower()
    if kind == "anything-but":
        if isinstance(argument, dict):
            return not _matches_one(argument, value)
        return value not in (argument if isinstance(argument, list) else [argument])
    if kind == "numeric":
        return _is_number(value) and all(
            _NUMERIC[op](value, bound) for op, bound in zip(argument[::2], argument[1::2]))
    raise ValueError(f"unsupported filter matcher {kind!r}")
