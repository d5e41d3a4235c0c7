"""Errors every layer may raise; each transport turns them into its own answer.

The REST transport answers `{"title", "description"}` with the status; the
websocket transport answers an error frame with the same status.
"""


class ZaqarError(Exception):
    status = 500
    title = "Internal server error"

    def __init__(self, description=None, title=None, headers=None):
        super().__init__(description or title or self.title)
        self.description = description
        if title is not None:
            self.title = title
        self.headers = headers or {}

    def body(self):
        body = {"title": self.title}
        if self.description is not None:
            body["description"] = self.description
        return body


class BadRequest(ZaqarError):
    status = 400
    title = "Invalid API request"


class InvalidBody(BadRequest):
    title = "Invalid request body"


class InvalidParameter(BadRequest):
    title = "Invalid parameter"


class Unauthorized(ZaqarError):
    """No credentials, or ones the identity service refused."""
    status = 401
    title = "Unauthorized"


class Forbidden(ZaqarError):
    status = 403
    title = "Not authorized"


class QuotaExceeded(Forbidden):
    """A valid request that would take the project past a quota of its stage:
    refused, as Zaqar refuses a request the caller's state forbids (a claimed
    message's delete), with 403; nothing is changed."""
    title = "Quota exceeded"


class TooManyRequests(ZaqarError):
    """More requests than the project's rate limit; Retry-After says when to retry."""
    status = 429
    title = "Too many requests"


class NotFound(ZaqarError):
    status = 404
    title = "Not found"


class Conflict(ZaqarError):
    status = 409
    title = "Resource conflict"


class UnsupportedMediaType(ZaqarError):
    status = 415
    title = "415 Unsupported Media Type"


class NotAcceptable(ZaqarError):
    status = 406
    title = "406 Not Acceptable"


class ServiceUnavailable(ZaqarError):
    """The backend failed or kept throttling after retries; nothing was changed."""
    status = 503
    title = "Service temporarily unavailable"

    def __init__(self, description="The backend did not answer in time."):
        super().__init__(description + " Please try again in a few seconds.")


class ClaimNotFound(NotFound):
    pass


class MessageNotFound(NotFound):
    pass
