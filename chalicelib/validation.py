"""Checks that a request is well formed, shared by every transport.

JSON documents are checked against the schemas in `schemas/` (the subset of
JSON Schema that chalicelib/schemas.py checks). A schema may hold two
extensions that JSON Schema itself ignores:
  * a string "$<setting>" where a number belongs, replaced by that setting's
    value (so limits follow the stage's configuration);
  * "x-error" (or "x-error-<keyword>", which wins for that keyword): the
    description to answer when the value fails there, formatted with the
    settings, e.g. "may not exceed {max_message_ttl} seconds", and with
    {value} and {key} (the failing value and the member holding it).
"""
import functools
import json
import math
import re
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from chalicelib.config import Settings
from chalicelib.errors import BadRequest, InvalidBody, InvalidParameter
from chalicelib.schemas import Schema, shallowest

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
QUEUE_NAME = re.compile(r"[a-zA-Z0-9_\-.]+")  # used with fullmatch: no "\n" at the end
QUEUE_NAME_MAX = 64
PROJECT_ID_MAX = 256
INT64 = (-2 ** 63, 2 ** 63 - 1)
# Falcon's words, case included: Zaqar answers 400 to "TRUE" or "No".
TRUE_WORDS = {"true", "True", "t", "yes", "y", "1", "on"}
FALSE_WORDS = {"false", "False", "f", "no", "n", "0", "off"}


@dataclass(frozen=True)
class Context:
    """Who is asking, as checked by the transport (chalicelib/auth)."""
    project: str
    client_id: str
    roles: frozenset
    settings: Settings
    user_id: str | None = None  # Keystone's; None without authentication
    # The caller's own token, to call Keystone as the caller; kept out of reprs (logs).
    auth_token: str | None = field(default=None, repr=False)


# -- JSON documents ---------------------------------------------------------

# Deep enough for any real document (Ruby's JSON parser stops at 100 too),
# and far from Python's recursion limit, which a deeper one would reach in
# the encoder or the schema checks (a 500 instead of a 400).
JSON_MAX_DEPTH = 100
UNPARSABLE = "Request body could not be parsed."
TOO_DEEP = f"JSON may nest at most {JSON_MAX_DEPTH} levels deep."
PLAIN_SCALARS = frozenset({str, bool, type(None)})  # need no further check


def check_json_value(document):
    """Refuse what could not be stored and later answered as strict JSON:
    NaN and infinities (Python's parser takes NaN, Infinity and 1e400),
    integers outside 64 bits, object keys that are not strings, values that
    are not JSON at all (a MessagePack frame can carry bytes and extension
    types), and nesting deeper than JSON_MAX_DEPTH. Every transport checks
    what it decoded here.
    """
    containers = [(document, 1)]
    while containers:
        value, depth = containers.pop()
        if isinstance(value, dict):
            if not all(type(key) is str for key in value):
                raise InvalidBody("JSON object keys must be strings.")
            items = value.values()
        elif isinstance(value, list):
            items = value
        else:
            _check_scalar(value)
            continue
        if depth > JSON_MAX_DEPTH:
            raise InvalidBody(TOO_DEEP)
        for item in items:
            if isinstance(item, (dict, list)):
                containers.append((item, depth + 1))
            elif type(item) not in PLAIN_SCALARS:
                _check_scalar(item)


def _check_scalar(value):
    if type(value) in PLAIN_SCALARS:
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidBody(UNPARSABLE)
    elif isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            raise InvalidBody("JSON contains integer that is too large.")
    else:
        raise InvalidBody(f"A value of type {type(value).__name__} is not JSON.")


def load_json(raw):
    """Any strict JSON value, checked by check_json_value; InvalidBody if not."""
    try:
        document = json.loads(raw)
    except RecursionError:  # far deeper than the limit
        raise InvalidBody(TOO_DEEP)
    except (ValueError, UnicodeDecodeError):
        raise InvalidBody(UNPARSABLE)
    check_json_value(document)
    return document


def parse_json(raw, required=True):
    """Parse a request body; the top level must be an object or an array.

    Returns None for an absent body when it is not required.
    """
    if raw is None or raw == b"" or raw == "":
        if required:
            raise InvalidBody("Request body can not be empty")
        return None
    document = load_json(raw)
    if not isinstance(document, (dict, list)):
        raise InvalidBody(UNPARSABLE)
    return document


def resolve_placeholders(node, values):
    """The schema `node` with each "$setting" string replaced by its value."""
    if isinstance(node, dict):
        return {key: resolve_placeholders(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve_placeholders(value, values) for value in node]
    if isinstance(node, str) and node.startswith("$") and node[1:] in values:
        return values[node[1:]]
    return node


@functools.lru_cache(maxsize=64)
def _schema(name, settings):
    with open(SCHEMA_DIR / f"{name}.json") as schema_file:
        return Schema(resolve_placeholders(json.load(schema_file), asdict(settings)))


def _describe(failure, settings):
    """The schema's description of a failure ("x-error-<keyword>" or
    "x-error"); besides the settings it may name
    {value} (the failing value) and {key} (the member holding it)."""
    schema = failure.schema
    text = schema.get(f"x-error-{failure.keyword}", schema.get("x-error"))
    if not text:
        return failure.message
    key = failure.path[-1] if failure.path else ""
    return text.format(value=failure.instance, key=key, **asdict(settings))


def validate(name, document, settings, error=BadRequest):
    """Check `document` against schemas/<name>.json; `error` on failure.

    Of several failures the shallowest is reported, so a wrong container type
    is named before anything inside it.
    """
    failure = shallowest(_schema(name, settings).failures(document))
    if failure is not None:
        raise error(_describe(failure, settings), title=_title(failure))


def _title(failure):
    """The schema's title for a failure ("x-title-<keyword>" or "x-title"), or
    None for the error class's own: Zaqar titles a wrongly shaped body
    "Invalid request body" and a value out of range "Invalid API request"."""
    return failure.schema.get(f"x-title-{failure.keyword}", failure.schema.get("x-title"))


# -- headers ----------------------------------------------------------------

def check_client_id(client_id, settings):
    if client_id is None:
        raise BadRequest('The "Client-Id" header is required.',
                         title="Missing header value")
    if settings.client_id_uuid_safe == "off":
        if not (settings.min_length_client_id <= len(client_id)
                <= settings.max_length_client_id):
            raise BadRequest(
                title=f"Length of client id must be at least "
                      f"{settings.min_length_client_id} and no greater than "
                      f"{settings.max_length_client_id}.")
        return
    try:
        uuid.UUID(client_id)
    except ValueError:
        raise BadRequest("Malformed hexadecimal UUID.", title="Wrong UUID value")


def check_project(project):
    if project is None:
        raise BadRequest("The header X-PROJECT-ID was missing",
                         title="Project-Id Missing")
    if project == "":
        raise BadRequest(title="Empty project header not allowed")
    if len(project) > PROJECT_ID_MAX:
        raise BadRequest(
            "The format of the submitted queue name or project id is not valid.",
            title="Invalid queue identification")


def check_queue_name(name, kind="queue"):
    # Zaqar allows dots, but "." and ".." are dot segments: a queue's href
    # /v2/queues/.. would name another resource once a client normalises it.
    if (len(name) > QUEUE_NAME_MAX or not QUEUE_NAME.fullmatch(name)
            or name in (".", "..")):
        raise BadRequest(
            f"The format of the submitted {kind} name or project id is not valid.",
            title=f"Invalid {kind} identification")


def request_project(headers):
    """The project a request names: X-Project-ID, or the legacy aliases
    oslo.context accepts. None when it names none."""
    project = headers.get("x-project-id")
    if project is None:
        project = headers.get("x-tenant-id", headers.get("x-tenant"))
    return project


# -- query parameters -------------------------------------------------------

def _last(params, name):
    value = params.get(name)
    return value[-1] if isinstance(value, list) else value


def _invalid_parameter(name, why):
    # Falcon's wording, which Zaqar answers with.
    return InvalidParameter(f'The "{name}" parameter is invalid. {why}')


def param_text(params, name):
    """The parameter's (last) value; None when absent or blank."""
    value = _last(params, name)
    return None if value is None or value == "" else str(value)


def param_bool(params, name, default=False):
    value = _last(params, name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if str(value) in TRUE_WORDS:
        return True
    if str(value) in FALSE_WORDS:
        return False
    raise _invalid_parameter(name, 'The value of the parameter must be "true" or "false".')


def param_int(params, name, default=None):
    value = _last(params, name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise _invalid_parameter(name, "The value must be an integer.")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _invalid_parameter(name, "The value must be an integer.")


def param_list(params, name):
    """Comma-separated and/or repeated values; blanks dropped. None if absent."""
    value = params.get(name)
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    items = [item.strip() for part in values for item in str(part).split(",")]
    items = [item for item in items if item]
    return items or None


def check_limit(limit, maximum, wording="no greater than"):
    if limit is not None and not 0 < limit <= maximum:
        raise BadRequest(f"Limit must be at least 1 and {wording} {maximum}.")
