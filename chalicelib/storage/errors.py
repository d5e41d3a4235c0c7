"""What storage refuses, as types the actions turn into Zaqar's answers.

No pynamodb or botocore type is part of the contract: a backend that fails
shows as errors.ServiceUnavailable (storage.retry), or is turned into one by
`unexpected`.
"""
from chalicelib.errors import ServiceUnavailable, ZaqarError

# What a failing backend raises: through pynamodb, or from a low-level
# client. Named, not imported: the transports import this module, and
# importing pynamodb and botocore costs a cold start ~150 ms.
BACKEND_FAILURES = {"pynamodb.exceptions.PynamoDBException",
                    "botocore.exceptions.BotoCoreError", "botocore.exceptions.ClientError"}


def is_backend_failure(error):
    """Whether `error` came from the storage backend (answered 503)."""
    return any(f"{kind.__module__}.{kind.__qualname__}" in BACKEND_FAILURES
               for kind in type(error).__mro__)


def unexpected(error):
    """The Zaqar error both transports answer for an exception no action
    turned into one: 503 for a backend that failed, else 500 (the client is
    shown no trace)."""
    return ServiceUnavailable() if is_backend_failure(error) else ZaqarError()


class StorageError(Exception):
    """Storage refused what it was asked."""


class ClaimNotFound(StorageError):
    """A delete named a claim that does not exist or has ended."""


class MessageNotClaimed(StorageError):
    """A delete named a claim, but the message is not held by one."""


class ClaimedByAnother(StorageError):
    """The message is held by a live claim other than the one named (or a
    delete named none)."""


class StaleQueue(StorageError):
    """The queue's facts the caller gave (base.QueueFacts) are older than
    the queue: it changed since they were read. Nothing was done."""


class SubscriberTaken(StorageError):
    """Another live subscription of the queue has this subscriber."""
