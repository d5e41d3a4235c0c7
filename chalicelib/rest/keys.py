"""API keys, for administrators (not Zaqar's; see auth/apikey.py): issue a
key for a project (shown this once), list a project's keys, show one,
revoke one. Never the key itself after it is issued, never its hash."""
import re

from chalice import Blueprint

from chalicelib import auth
from chalicelib.auth import apikey
from chalicelib.errors import BadRequest, NotFound
from chalicelib.rest import respond, route
from chalicelib.validation import param_text, validate

bp = Blueprint(__name__)
KEY_ID = re.compile(r"[0-9a-f]{16}")


def _shown(key):
    return {"id": key.id, "project": key.project, "roles": sorted(key.roles),
            "name": key.name, "created": key.created, "expires": key.expires,
            "revoked": key.revoked, "last_used": key.last_used,
            "href": f"/v2/keys/{key.id}"}


def _keys(call):
    if "apikey" not in auth.modes(call.settings):
        raise NotFound("This stage does not take API keys (AUTH_STRATEGY has no apikey).")
    return apikey.key_store(call.settings)


def _stored(call, key_id):
    found = _keys(call).get(key_id) if KEY_ID.fullmatch(key_id) else None
    if found is None:
        raise NotFound(f"No API key {key_id}.")
    return found


@route(bp, "/v2/keys", ["POST"], "keys:create")
def create_key(call):
    _keys(call)
    document = call.body()
    validate("key_create", document, call.settings)
    key, stored = apikey.issue(call.settings, document["project"],
                               frozenset(document["roles"]), document["name"],
                               document.get("ttl"))
    return respond(201, {**_shown(stored), "key": key}, {"Location": f"/v2/keys/{stored.id}"})


@route(bp, "/v2/keys", ["GET"], "keys:get_all")
def list_keys(call):
    project = param_text(call.params, "project")
    if not project:
        raise BadRequest("Name the project whose keys to list: ?project=ID.")
    return respond(200, {"keys": [_shown(key) for key in _keys(call).list_project(project)]})


@route(bp, "/v2/keys/{key_id}", ["GET"], "keys:get")
def get_key(call, key_id):
    return respond(200, _shown(_stored(call, key_id)))


@route(bp, "/v2/keys/{key_id}", ["DELETE"], "keys:delete")
def revoke_key(call, key_id):
    _stored(call, key_id)
    apikey.revoke(call.settings, key_id)
    return respond(204)
