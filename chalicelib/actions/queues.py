"""Queue actions, shared by the REST and websocket transports."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from chalicelib import clock, parameters, signed_urls
from chalicelib.actions import on_its_pool, pools, quotas, storage
from chalicelib.errors import BadRequest, Conflict, InvalidBody, NotFound
from chalicelib.validation import QUEUE_NAME_MAX, check_limit, check_queue_name, validate

if TYPE_CHECKING:
    from chalicelib.config import Settings
    from chalicelib.validation import Context

RESERVED_DEFAULTS = (
    ("_max_messages_post_size", lambda s: s.max_messages_post_size),
    ("_default_message_ttl", lambda s: s.default_message_ttl),
    ("_default_message_delay", lambda s: s.default_message_delay),
    ("_dead_letter_queue", lambda s: None),
    ("_dead_letter_queue_messages_ttl", lambda s: None),
    ("_max_claim_count", lambda s: None),
    ("_enable_encrypt_messages", lambda s: False),
)
RESERVED_NAMES = {name for name, _ in RESERVED_DEFAULTS}
PATCH_MEDIA_TYPE = "application/openstack-messaging-v2.0-json-patch"
# Zaqar's retry policy defaults, and the smallest backoff span it accepts
# (two steps of its 5 s linear interval).
RETRY_MINIMUM_DELAY = 5
RETRY_MAXIMUM_DELAY = 30
RETRY_MINIMUM_SPAN = 10


def with_defaults(metadata: dict | None, settings: Settings) -> dict:
    """Metadata as a queue GET shows it: reserved keys filled in when unset or
    falsy, as Zaqar does."""
    shown = dict(metadata or {})
    for name, default in RESERVED_DEFAULTS:
        if not shown.get(name):
            shown[name] = default(settings)
    return shown


def _set_values(mapping):
    # Zaqar skips the checks of a falsy value: it means "unset".
    return {key: value for key, value in mapping.items() if value}


def _check_retry_delays(policy, error):
    minimum = policy.get("minimum_delay") or RETRY_MINIMUM_DELAY
    maximum = policy.get("maximum_delay") or RETRY_MAXIMUM_DELAY
    if maximum < minimum:
        raise error("minimum_delay must less than maximum_delay.")
    if maximum - minimum < RETRY_MINIMUM_SPAN:
        raise error("invalid minimum_delay and maximum_delay.")


def check_metadata(metadata: dict, settings: Settings,
                   error: type[BadRequest] = BadRequest) -> None:
    """Check the reserved keys of a queue's metadata (a dict)."""
    reserved = _set_values({key: value for key, value in metadata.items()
                            if key.startswith("_")})
    if isinstance(reserved.get("_retry_policy"), dict):
        reserved["_retry_policy"] = _set_values(reserved["_retry_policy"])
    validate("queue_metadata", reserved, settings, error=error)
    if "_retry_policy" in reserved:
        _check_retry_delays(reserved["_retry_policy"], error)


def check_metadata_size(size: int | None, settings: Settings) -> None:
    if size is not None and size > settings.max_queue_metadata:
        raise BadRequest(
            f"Queue metadata is too large. Max size: {settings.max_queue_metadata}")


def create(ctx: Context, name: str, metadata: object = None) -> bool:
    """Create the queue; True if created, False if it existed (unchanged)."""
    check_queue_name(name)
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict):
        raise InvalidBody("Document type not supported.")
    check_metadata(metadata, ctx.settings)
    if (ctx.settings.max_queues_per_project
            and storage(ctx).queues.get_metadata(ctx.project, name) is None):
        quotas.check_new_queue(ctx)
    return storage(ctx).queues.create(ctx.project, name, metadata,
                                      pools.placement(ctx, metadata))


def get(ctx: Context, name: str) -> dict:
    """The stored metadata ({} for a missing queue, as Zaqar answers)."""
    check_queue_name(name)
    return storage(ctx).queues.get_metadata(ctx.project, name) or {}


@on_its_pool
def delete(ctx: Context, name: str) -> None:
    check_queue_name(name)
    storage(ctx).messages.delete_queue_contents(ctx.project, name)
    storage(ctx).queues.delete(ctx.project, name)


def _filter_value(text):
    # A value that looks like an integer is compared as one, as Zaqar does.
    try:
        return int(text)
    except ValueError:
        return text


def _metadata_matcher(filters):
    if not filters:
        return None
    wanted = {key: _filter_value(text) for key, text in filters.items()}

    def matches(metadata):
        return all(key in metadata and type(metadata[key]) is type(value)
                   and metadata[key] == value for key, value in wanted.items())
    return matches


def list_queues(ctx: Context, marker: str | None = None, limit: int | None = None,
                detailed: bool = False, name: str | None = None,
                with_count: bool = False, metadata_filters: dict[str, str] | None = None,
                ) -> tuple[list[dict], int | None]:
    """A page of the project's queues: ([{"name", "metadata"?}], count|None)."""
    limit = 10 if limit is None else limit
    check_limit(limit, ctx.settings.max_queues_per_page)
    # No name is longer than QUEUE_NAME_MAX, so a longer marker sorts among
    # names where its first QUEUE_NAME_MAX characters do; cut, it also stays
    # within DynamoDB's key size.
    marker = marker[:QUEUE_NAME_MAX] if marker else marker
    page = storage(ctx).queues.list_page(ctx.project, marker=marker, limit=limit,
                                         name_filter=name,
                                         match=_metadata_matcher(metadata_filters))
    queues = []
    for queue_name, metadata in page:
        entry = {"name": queue_name}
        if detailed:
            entry["metadata"] = with_defaults(metadata, ctx.settings)
        queues.append(entry)
    count = storage(ctx).queues.count(ctx.project) if with_count else None
    return queues, count


def _decode_pointer(path):
    # Zaqar strips blanks around each decoded part.
    return [part.replace("~1", "/").replace("~0", "~").strip()
            for part in path[1:].split("/")]


def _check_roots(operations):
    # As in Zaqar, the root of a "remove" path is not checked.
    for operation in operations:
        root, _ = _decode_pointer(operation["path"])
        if operation["op"] != "remove" and root.lower() != "metadata":
            raise InvalidBody("The root of path must be metadata, e.g /metadata/key.")


def _apply_patch(operations):
    def change(metadata):
        for operation in operations:
            _, key = _decode_pointer(operation["path"])
            op = operation["op"]
            if op == "add":
                metadata[key] = operation["value"]
            elif op == "replace":
                if key not in metadata and key not in RESERVED_NAMES:
                    raise Conflict(f"Can't replace non-existent object {key}.")
                metadata[key] = operation["value"]
            elif key in metadata:
                del metadata[key]
            elif key not in RESERVED_NAMES:
                raise Conflict(f"Can't remove non-existent object {key}.")
        return metadata
    return change


@on_its_pool
def patch(ctx: Context, name: str, operations: object) -> dict:
    """Apply a JSON-Patch to the metadata; returns it with defaults filled in.

    `operations` is the parsed body, None when the body was empty. As in
    Zaqar, every failure here is an "Invalid request body".
    """
    check_queue_name(name)
    if operations is None:
        raise InvalidBody("PATCH body could not be empty for update.")
    validate("queue_patch", operations, ctx.settings, error=InvalidBody)
    _check_roots(operations)
    change = _apply_patch(operations)

    def change_and_check(metadata):
        updated = change(metadata)
        check_metadata(updated, ctx.settings, error=InvalidBody)
        return updated

    metadata = storage(ctx).queues.update_metadata(ctx.project, name, change_and_check)
    if metadata is None:
        raise NotFound(f"Queue {name} does not exist for project {ctx.project}")
    return with_defaults(metadata, ctx.settings)


@on_its_pool
def stats(ctx: Context, name: str) -> tuple[dict, bool]:
    """({"claimed", "delayed", "free", "total", "oldest"?, "newest"?}, whether
    the queue exists). See storage.stats for how exact the counts are; a
    missing queue has zero counts."""
    check_queue_name(name)
    metadata, floor = storage(ctx).queues.get_with_floor(ctx.project, name)
    if metadata is None:
        return {"claimed": 0, "delayed": 0, "free": 0, "total": 0}, False
    counts, oldest, newest = storage(ctx).stats.queue_stats(ctx.project, name, floor)
    shown, now = dict(counts), clock.now_ms()
    for key, message in (("oldest", oldest), ("newest", newest)):
        if message is not None:
            created = datetime.fromtimestamp(message.created / 1000, timezone.utc)
            shown[key] = {
                "id": message.id, "age": max(0, (now - message.created) // 1000),
                "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "href": f"/v2/queues/{name}/messages/{message.id}"}
    return shown, True


@on_its_pool
def purge(ctx: Context, name: str, document: object = None) -> None:
    """Remove the queue's messages and/or subscriptions (both by default)."""
    check_queue_name(name)
    document = document or {}
    validate("queue_purge", document, ctx.settings)
    resource_types = document.get("resource_types") or ["messages", "subscriptions"]
    if "messages" in resource_types:
        storage(ctx).messages.purge(ctx.project, name)
    if "subscriptions" in resource_types:
        storage(ctx).subscriptions.purge(ctx.project, name)


SHAREABLE_PATHS = ("messages", "subscriptions", "claims")
SHARE_KEYS = {"paths", "methods", "expires"}
SHARE_LIFETIME_MS = 24 * 3600 * 1000


def share(ctx: Context, name: str, document: object) -> dict:
    """A pre-signed URL for the queue's messages, claims or subscriptions:
    {"project", "paths", "methods", "expires", "signature"}."""
    check_queue_name(name)
    if not isinstance(document, dict):
        raise InvalidBody("Request body could not be parsed.")
    unknown = set(document) - SHARE_KEYS
    if unknown:
        raise BadRequest(f"Unknown keys: {unknown}")
    paths = document.get("paths", ["messages"])
    if not isinstance(paths, list) or not all(
            isinstance(path, str) and path in SHAREABLE_PATHS for path in paths):
        raise BadRequest(f"Invalid paths: {paths}")
    methods = document.get("methods", ["GET"])
    if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
        raise BadRequest("Methods must be a list of HTTP methods.")
    now = clock.now_ms()
    expires = document.get("expires")
    if expires is None:
        expires_ms = now + SHARE_LIFETIME_MS
    else:
        if isinstance(expires, int) or str(expires).isdigit():
            raise BadRequest("`expires` should be date format, for example "
                             f"2016-01-01T00:00:00, not integer value: {expires}")
        expires_ms = signed_urls.parse_expires(expires)
        if expires_ms is None:
            raise BadRequest(f"`expires` is not a valid date: {expires}")
        if expires_ms <= now:
            raise BadRequest("`expires` should be a date in the future.")
    key = parameters.signed_url_key(ctx.settings)
    if not key:
        raise BadRequest("Signed URLs need a secret key, and none is configured.")
    full_paths = [f"/v2/queues/{name}/{path}" for path in paths]
    return signed_urls.sign(key, full_paths, methods, ctx.project, expires_ms)
