"""The REST transport: request checks, responses and errors, as Zaqar's WSGI
transport does them.

Every route is declared with `route(blueprint, path, methods, rule)`, `rule`
naming its policy rule (chalicelib/auth/policy.py). The wrapper finds out
who calls (a signed URL, the identity API Gateway's authorizer passed on, or
the stage's auth mode run here), runs Zaqar's request checks in its order
(content type, Accept, Client-ID, project, policy, queue name), builds the
Context the actions need, and turns errors
into `{"title", "description"}` bodies: ZaqarError with its status, a storage
failure with 503, anything else with a logged 500 that shows no stack trace.
Every answer carries its x-openstack-request-id, and the request's log line
and metrics (chalicelib/telemetry.py) are written as it goes.
"""
import functools
import json
import logging

from chalice import Response

from chalicelib import auth, clock, cors, parameters, signed_urls, telemetry, throttle
from chalicelib.auth import Identity, gateway, policy
from chalicelib.config import get_settings
from chalicelib.errors import BadRequest, NotAcceptable, NotFound, ZaqarError
from chalicelib.storage import configure as configure_storage
from chalicelib.storage.errors import unexpected
from chalicelib.validation import check_queue_name, parse_json, request_project

log = logging.getLogger("zaqar.rest")
JSON = "application/json"
ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def respond(status, body=None, headers=None, content_type=JSON):
    """A response; body None means an empty body."""
    headers = dict(headers or {})
    headers.setdefault("Content-Type", content_type)
    text = "" if body is None else json.dumps(body)
    return Response(body=text, status_code=status, headers=headers)


def error_response(error):
    body = error.body()
    if isinstance(error, NotAcceptable):
        body["link"] = {"text": "14.1 Accept, Hypertext Transfer Protocol -- HTTP/1.1",
                        "href": "http://www.w3.org/Protocols/rfc2616/rfc2616-sec14.html",
                        "rel": "help"}
    return respond(error.status, body, error.headers)


def _accepts_json(accept):
    if not accept:
        return True
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media in ("*/*", "application/*", JSON) or media.endswith("+json"):
            return True
    return False


def query_params(request):
    """Query parameters: a repeated name gives a list, a single one a string.
    Blank values are dropped, as Zaqar does."""
    params = {}
    for name in (request.query_params or {}):
        values = [value for value in request.query_params.getlist(name) if value != ""]
        if values:
            params[name] = values[0] if len(values) == 1 else values
    return params


class Call:
    """What a view gets: the checked context and the parts of the request."""

    def __init__(self, request, ctx):
        self.request = request
        self.ctx = ctx
        self.settings = ctx.settings if ctx else get_settings()
        self.params = query_params(request)
        self.headers = request.headers

    def body(self, required=True):
        return parse_json(self.request.raw_body, required=required)

    @property
    def content_length(self):
        raw = self.request.raw_body
        return len(raw) if raw is not None else None


def _check_signature(request, settings):
    """A request carrying URL-Signature must be exactly what was signed; any
    failure is a 404, as Zaqar answers (an empty signature included)."""
    path = request.path.format(**(request.uri_params or {}))
    if not signed_urls.allows(request.headers, parameters.signed_url_key(settings),
                              request.method, path, request_project(request.headers),
                              clock.now_ms()):
        raise NotFound(title="404 Not Found")


def _caller(request, settings):
    """Who calls. A signed request acts, without a token, for the project
    it was signed for (and with no role); otherwise the authorizer's
    identity, or, where none ran (the test client), the mode's own answer."""
    if request.headers.get("url-signature") is not None:
        _check_signature(request, settings)
        return Identity(project=request_project(request.headers), roles=frozenset())
    identity = gateway.identity_in(request.context) or auth.authenticate(
        request.headers, settings)
    # API Gateway or a warm cache may hold a decision past the token's life.
    if auth.expired(identity, clock.now_ms()):
        raise auth.unauthorized(settings)
    return identity


def _check_media_types(request):
    content_type = (request.headers.get("content-type") or "").lower()
    if request.raw_body and content_type.startswith("application/x-www-form-urlencoded"):
        raise BadRequest(
            "Endpoint does not accept `application/x-www-form-urlencoded` content; "
            "currently supported media type is `application/json`; specify proper "
            'client-side media type with the "Content-Type" header.',
            title="Invalid Content-Type")
    if not _accepts_json(request.headers.get("accept")):
        raise NotAcceptable(
            "Endpoint only serves `application/json`; specify client-side media "
            'type support with the "Accept" header.')


def _check_request(request, settings, rule):
    """The Context for a request to a route under `rule` (None: open)."""
    if rule is None:
        _check_media_types(request)
        return None
    identity = _caller(request, settings)
    _check_media_types(request)
    ctx = auth.context_for(request.headers, identity, settings)
    policy.enforce(rule, ctx.roles, settings)
    throttle.take(ctx.project, settings, clock.now_ms())
    return ctx


def handle(view, app_getter, rule):
    """Wrap a view(call, **path_params) with checks and error mapping."""
    @functools.wraps(view)
    def wrapper(**path_params):
        request = app_getter().current_request
        served = _open(request, rule or view.__name__, path_params.get("queue_name"))
        settings = ctx = None
        try:
            settings = get_settings()
            configure_storage(settings)
            ctx = _check_request(request, settings, rule)
            for name in ("queue_name",):
                if name in path_params:
                    check_queue_name(path_params[name])
            response = view(Call(request, ctx), **path_params)
        except ZaqarError as error:
            response = error_response(error)
        except Exception as error:
            failure = unexpected(error)
            log.exception("%s on %s %s (%s)", failure.title, request.method, request.path,
                          served.request_id)
            response = error_response(failure)
        return _close(request, served, with_cors(response, request), settings, ctx)
    return wrapper


def _open(request, action, queue=None):
    """Open the request's invocation (chalicelib/telemetry), its id tied to
    API Gateway's."""
    context = request.context or {}
    return telemetry.invocation(
        "request", telemetry.request_id_for(context.get("requestId")),
        method=request.method, path=context.get("path"), route=request.path,
        action=action, queue=queue, gateway_request_id=context.get("requestId"))


def _close(request, served, response, settings=None, ctx=None):
    """The response with its request id, once the request's line is written."""
    response.headers["x-openstack-request-id"] = served.request_id
    telemetry.finish(served, stage=settings.stage if settings else "",
                     function_request_id=getattr(request.lambda_context,
                                                 "aws_request_id", None),
                     status=response.status_code, project=ctx.project if ctx else None)
    return response


def _cors_settings():
    try:
        return get_settings()
    except ValueError:  # a bad setting; the answer says so, without CORS
        return None


def with_cors(response, request):
    """The answer, with the CORS headers the request's Origin may have
    (chalicelib/cors.py): on errors too, so a page can read them."""
    settings = _cors_settings()
    if settings is not None:
        response.headers.update(cors.headers(request.headers, settings))
    return response


def route(blueprint, path, methods, rule):
    """Declare a Zaqar route on a Chalice blueprint, under policy `rule`;
    None for a route Zaqar serves to anyone (auth.gateway.OPEN_ROUTES)."""
    if rule is None and not all(gateway.is_open(method, path) for method in methods):
        raise ValueError(f"{path} is not one of the routes open to anyone")
    if rule is not None and rule not in policy.DEFAULTS:
        raise ValueError(f"{path}: no policy rule {rule!r}")

    def register(view):
        wrapped = handle(view, lambda: blueprint.current_app, rule)
        blueprint.route(path, methods=list(methods), content_types=["*/*"])(wrapped)
        return view
    return register


def _options_headers(request, allowed):
    """A CORS preflight's headers (none for an origin or method not
    allowed), or a plain OPTIONS answer's CORS headers."""
    settings = _cors_settings()
    if settings is None:
        return {}
    if cors.is_preflight(request.method, request.headers):
        return cors.preflight_headers(request.headers, allowed, settings)
    return cors.headers(request.headers, settings)


def add_method_fallbacks(app):
    """Answer 405 with Allow for the methods a path lacks, and OPTIONS with
    200 and Allow, as Zaqar does (API Gateway would answer 403 otherwise).
    OPTIONS also answers CORS preflights, without authentication: a browser
    sends no credentials with one (auth.gateway.is_open)."""
    for path, entries in list(app.routes.items()):
        # Sorted, then OPTIONS: the order Zaqar's Allow header shows.
        allowed = sorted(method for method in ALL_METHODS if method in entries)
        allow = ", ".join(allowed + ["OPTIONS"])
        missing = [method for method in ALL_METHODS if method not in entries]

        def not_allowed(allow=allow, **params):
            request = app.current_request
            served = _open(request, "method_not_allowed", params.get("queue_name"))
            return _close(request, served, with_cors(respond(
                405, {"title": "405 Method Not Allowed"}, {"Allow": allow}), request))

        def options(allow=allow, allowed=allowed, **params):
            request = app.current_request
            served = _open(request, "options", params.get("queue_name"))
            headers = {"Allow": allow, **_options_headers(request, allowed)}
            return _close(request, served, respond(200, None, headers))

        name = path.strip("/").replace("/", "_").replace("{", "").replace("}", "") or "root"
        if missing:
            app.route(path, methods=missing, content_types=["*/*"],
                      name=f"not_allowed_{name}")(not_allowed)
        if "OPTIONS" not in entries:
            app.route(path, methods=["OPTIONS"], content_types=["*/*"],
                      name=f"options_{name}")(options)
