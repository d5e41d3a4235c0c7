"""Sending one payload: a POST to a webhook, or a mail through Amazon SES.

Both answer an Outcome. Worth another attempt: connection errors, timeouts
and the answers 408, 429 and 5xx (Zaqar gave up on a 5xx; the contract says
to retry). Not worth one: a refused target, or any other answer.
"""
import functools
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from chalicelib.notify import targets

RETRY_STATUSES = {408, 429}
SES_RETRY_CODES = {"Throttling", "ThrottlingException", "ServiceUnavailable"}
MAX_ANSWER_BYTES = 65536  # of an answer's body, read and dropped


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    retryable: bool = False
    reason: str = ""


DELIVERED = Outcome(True)


@functools.cache
def _connections():
    """{scheme: connection class}, made on the first webhook: http.client
    brings email and ssl, ~20 ms of every cold start, webhook or none."""
    import http.client
    import socket
    import ssl

    class PinnedHTTPConnection(http.client.HTTPConnection):
        """Connects to an address checked beforehand; the URL's host still
        goes in the Host header."""

        def __init__(self, host, port, address, timeout):
            super().__init__(host, port, timeout=timeout)
            self.address = address

        def connect(self):
            self.sock = socket.create_connection((self.address, self.port), self.timeout)

    class PinnedHTTPSConnection(http.client.HTTPSConnection):
        """As above, over TLS: the certificate is checked against the host name."""

        def __init__(self, host, port, address, timeout):
            self.tls = ssl.create_default_context()
            super().__init__(host, port, timeout=timeout, context=self.tls)
            self.address = address

        def connect(self):
            sock = socket.create_connection((self.address, self.port), self.timeout)
            self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)

    return {"http": PinnedHTTPConnection, "https": PinnedHTTPSConnection}


def post(url, headers, body, settings):
    """POST `body` to the webhook `url`, without following redirects."""
    import http.client  # see _connections
    parts = urlsplit(url)
    host, port = targets.host_and_port(url)
    try:
        address = targets.checked_address(host, port, settings)
    except targets.RefusedTarget as refused:
        return Outcome(False, reason=str(refused))
    except targets.UnresolvedTarget as unresolved:
        return Outcome(False, retryable=True, reason=str(unresolved))
    connection = _connections()[parts.scheme.lower()](host, port, address,
                                                      settings.webhook_timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", path, body=body, headers=headers)
        answer = connection.getresponse()
        answer.read(MAX_ANSWER_BYTES)
    except (OSError, http.client.HTTPException) as error:
        return Outcome(False, retryable=True,
                       reason=f"POST failed: {type(error).__name__} {error}".strip())
    finally:
        connection.close()
    if 200 <= answer.status < 300:
        return DELIVERED
    return Outcome(False, retryable=answer.status >= 500 or answer.status in RETRY_STATUSES,
                   reason=f"POST answered {answer.status} {answer.reason}".strip())


_ses_lock = threading.Lock()


@functools.lru_cache(maxsize=4)
def _new_ses(region, timeout):
    # boto3 on first use only: ~150 ms of every cold start, mail or none.
    import boto3
    from botocore.config import Config
    # Bounded like a webhook attempt, and tried once: the retry policy retries.
    config = Config(connect_timeout=timeout, read_timeout=timeout,
                    retries={"total_max_attempts": 1})
    return boto3.session.Session().client("ses", region_name=region or None, config=config)


def _ses(settings):
    # Made once, by one thread: a client takes a while to make, and boto3's
    # shared default session is not safe from several threads.
    with _ses_lock:
        return _new_ses(settings.ses_region, settings.webhook_timeout)


def send_mail(sender, address, subject, text, settings):
    from botocore.exceptions import BotoCoreError, ClientError
    try:
        _ses(settings).send_email(
            Source=sender, Destination={"ToAddresses": [address]},
            Message={"Subject": {"Data": subject, "Charset": "UTF-8"},
                     "Body": {"Text": {"Data": text, "Charset": "UTF-8"}}})
    except ClientError as error:
        details = error.response["Error"]
        code = details.get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return Outcome(False, retryable=status >= 500 or code in SES_RETRY_CODES,
                       reason=f"SES refused the mail: {code} {details.get('Message', '')}".strip())
    except BotoCoreError as error:
        return Outcome(False, retryable=True, reason=f"SES did not answer: {error}")
    return DELIVERED
