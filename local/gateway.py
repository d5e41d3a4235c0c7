"""API Gateway's part in authentication, for the local runner: before every
route but the open ones, call the app's `authorize` function with a REQUEST
authorizer event, and answer as the packaged gateway does (infra/package.py
writes the same answers into the template's gateway responses).

Chalice's local gateway runs only TOKEN authorizers, on the Authorization
header; this one stands in for it when the stage authenticates.
"""
import json
import logging

from chalice.local import LambdaContext, LocalGatewayException

from chalicelib.auth import gateway

log = logging.getLogger("local.gateway")
FUNCTION = "authorize"


class GatewayAnswer(LocalGatewayException):
    """An answer API Gateway gives itself, without calling the route."""

    def __init__(self, status, headers, body):
        super().__init__(headers, body)
        self.CODE = status


def _answer(response):
    status, headers, body = response
    return GatewayAnswer(status, {"Content-Type": "application/json", **headers},
                         json.dumps(body).encode())


class RequestAuthorizer:
    """Takes the place of chalice.local's LocalGatewayAuthorizer."""

    def __init__(self, app, settings):
        self._handler = app.handler_map[FUNCTION]
        self._responses = gateway.gateway_responses(settings)

    def authorize(self, raw_path, lambda_event, lambda_context):
        context = lambda_event["requestContext"]
        method, resource = context["httpMethod"], context["resourcePath"]
        if gateway.is_open(method, resource):
            return lambda_event, lambda_context
        event = {"type": "REQUEST", "methodArn": (
            f"arn:aws:execute-api:local:000000000000:local/api/{method}{context['path']}"),
            "resource": resource, "path": context["path"], "httpMethod": method,
            "headers": lambda_event.get("headers") or {},
            "queryStringParameters": lambda_event.get("queryStringParameters"),
            "requestContext": context}
        try:
            result = self._handler(event, LambdaContext(FUNCTION, 256))
        except gateway.Refused:
            raise _answer(self._responses["UNAUTHORIZED"]) from None
        except Exception as error:
            log.warning("the authorizer failed: %s", error)
            raise _answer(self._responses["AUTHORIZER_FAILURE"]) from None
        context["authorizer"] = {**result["context"], "principalId": result["principalId"]}
        return lambda_event, lambda_context
