"""Retries for transient DynamoDB failures.

Throttling, timeouts and 5xx from DynamoDB are retried with capped, jittered
exponential backoff; when they persist the caller gets ServiceUnavailable (503).
Everything else (a failed condition, a validation error) is raised at once.
"""
import random
import time

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PutError

from chalicelib.errors import ServiceUnavailable
from chalicelib.storage.errors import is_backend_failure

TRANSIENT_CODES = frozenset({
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "LimitExceededException",
})
ATTEMPTS = 6
BASE_DELAY = 0.02
MAX_DELAY = 0.64


def error_code(exc):
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code")
    return getattr(exc, "cause_response_code", None)


def is_transient(exc):
    if error_code(exc) in TRANSIENT_CODES or isinstance(exc, BotoCoreError):
        return True
    # Connection errors and timeouts reach pynamodb as botocore errors.
    return isinstance(getattr(exc, "cause", None), BotoCoreError)


def backoff(attempt):
    return random.uniform(0, min(MAX_DELAY, BASE_DELAY * 2 ** attempt))


def retrying(operation, *args, **kwargs):
    """Run operation(*args, **kwargs), retrying transient failures."""
    for attempt in range(ATTEMPTS):
        try:
            return operation(*args, **kwargs)
        except Exception as exc:
            if not (is_backend_failure(exc) and is_transient(exc)):
                raise
        if attempt + 1 < ATTEMPTS:
            time.sleep(backoff(attempt))
    raise ServiceUnavailable()


def condition_failed(exc):
    """True when a write was refused because its condition did not hold."""
    return error_code(exc) == "ConditionalCheckFailedException"


def saved_if(record, condition):
    """Save `record` if `condition` holds (retried as above); False, and
    nothing written, when it does not."""
    try:
        retrying(record.save, condition=condition)
    except PutError as exc:
        if condition_failed(exc):
            return False
        raise
    return True
