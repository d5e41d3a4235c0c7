"""The JSON-home document, as both transports serve it."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chalicelib.config import Settings


def _resource(template, variables, allow, formats=True, accept_post=False):
    hints = {"allow": allow}
    if formats:
        hints["formats"] = {"application/json": {}}
    if accept_post:
        hints["accept-post"] = ["application/json"]
    if variables:
        return {"href-template": template, "href-vars": variables, "hints": hints}
    return {"href": template, "hints": hints}


_Q = {"queue_name": "param/queue_name"}
_QM = {"queue_name": "param/queue_name", "message_id": "param/message_id"}
_QC = {"queue_name": "param/queue_name", "claim_id": "param/claim_id"}
_QS = {"queue_name": "param/queue_name", "subscription_id": "param/subscription_id"}
HOME = {"resources": {
    "rel/queues": _resource("/v2/queues{?marker,limit,detailed}",
                            {"marker": "param/marker", "limit": "param/queue_limit",
                             "detailed": "param/detailed"}, ["GET"]),
    "rel/queue": _resource("/v2/queues/{queue_name}", _Q, ["PUT", "DELETE", "GET", "PATCH"]),
    "rel/queue_stats": _resource("/v2/queues/{queue_name}/stats", _Q, ["GET"]),
    "rel/queue_share": _resource("/v2/queues/{queue_name}/share", _Q, ["POST"]),
    "rel/queue_purge": _resource("/v2/queues/{queue_name}/purge", _Q, ["POST"]),
    "rel/messages": _resource(
        "/v2/queues/{queue_name}/messages{?marker,limit,echo,include_claimed}",
        dict(_Q, marker="param/marker", limit="param/messages_limit",
             echo="param/echo", include_claimed="param/include_claimed"), ["GET"]),
    "rel/post_messages": _resource("/v2/queues/{queue_name}/messages", _Q, ["POST"],
                                   accept_post=True),
    "rel/messages_delete": _resource("/v2/queues/{queue_name}/messages{?ids,pop}",
                                     dict(_Q, ids="param/ids", pop="param/pop"),
                                     ["DELETE"], formats=False),
    "rel/message_delete": _resource(
        "/v2/queues/{queue_name}/messages/{message_id}{?claim}",
        dict(_QM, claim="param/claim_id"), ["DELETE"], formats=False),
    "rel/message_get": _resource("/v2/queues/{queue_name}/messages/{message_id}",
                                 _QM, ["GET"]),
    "rel/claim": _resource("/v2/queues/{queue_name}/claims/{claim_id}", _QC, ["GET"]),
    "rel/post_claim": _resource("/v2/queues/{queue_name}/claims{?limit}",
                                dict(_Q, limit="param/claim_limit"), ["POST"],
                                accept_post=True),
    "rel/patch_claim": _resource("/v2/queues/{queue_name}/claims/{claim_id}", _QC,
                                 ["PATCH"], accept_post=True),
    "rel/delete_claim": _resource("/v2/queues/{queue_name}/claims/{claim_id}", _QC,
                                  ["DELETE"], formats=False),
    "rel/subscriptions_get": _resource(
        "/v2/queues/{queue_name}/subscriptions{?marker,limit}",
        dict(_Q, marker="param/marker", limit="param/subscription_limit"), ["GET"]),
    "rel/subscriptions_post": _resource("/v2/queues/{queue_name}/subscriptions", _Q,
                                        ["POST"], accept_post=True),
    "rel/subscription": _resource(
        "/v2/queues/{queue_name}/subscriptions/{subscription_id}", _QS,
        ["GET", "DELETE"]),
    "rel/subscription_patch": _resource(
        "/v2/queues/{queue_name}/subscriptions/{subscription_id}", _QS, ["PATCH"],
        accept_post=True),
    "rel/ping": _resource("/v2/ping", None, ["GET", "HEAD"], formats=False),
}}
ADMIN_RESOURCES = {
    "rel/pools": _resource("/v2/pools{?detailed,limit,marker}",
                           {"detailed": "param/detailed", "limit": "param/pool_limit",
                            "marker": "param/marker"}, ["GET"]),
    "rel/pool": _resource("/v2/pools/{pool_name}", {"pool_name": "param/pool_name"},
                          ["GET", "PUT", "PATCH", "DELETE"]),
    "rel/flavors": _resource("/v2/flavors{?detailed,limit,marker}",
                             {"detailed": "param/detailed",
                              "limit": "param/flavor_limit", "marker": "param/marker"},
                             ["GET"]),
    "rel/flavor": _resource("/v2/flavors/{flavor_name}",
                            {"flavor_name": "param/flavor_name"},
                            ["GET", "PUT", "PATCH", "DELETE"]),
    "rel/health": _resource("/v2/health", None, ["GET"]),
}


def home_document(settings: Settings) -> dict:
    """The document, with the admin relations in admin mode."""
    if not settings.admin_mode:
        return HOME
    return {"resources": dict(HOME["resources"], **ADMIN_RESOURCES)}
