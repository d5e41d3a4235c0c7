"""The local runner's HTTP server over raw sockets: whatever a client sends,
it gets an answer, JSON in Zaqar's error shape, and never a connection left
hanging or out of step."""
import json
import socket

import pytest

from conftest import CLIENT_ID
from e2e.conftest import launch

IDENTITY = f"Client-ID: {CLIENT_ID}\r\nX-Project-ID: raw-http\r\n".encode()
READ_TIMEOUT = 0.5  # the runner's, in the module's own runner


def talk(port, raw, timeout=5):
    """Send raw bytes to 127.0.0.1:port; everything the runner sends back
    until it closes the connection (failing if it does not within timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(raw)
        received = b""
        try:
            while chunk := connection.recv(65536):
                received += chunk
        except TimeoutError:
            pytest.fail(f"the runner left the connection open after {received!r}")
        return received


def first_answer(received, head_only=False):
    """(status, headers with lower-case names, body, what follows) of the
    first answer in received."""
    head, _, rest = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    assert status_line.startswith("HTTP/1.1 "), received
    headers = dict(line.split(": ", 1) for line in lines)
    headers = {name.lower(): value for name, value in headers.items()}
    length = 0 if head_only else int(headers["content-length"])
    return int(status_line.split()[1]), headers, rest[:length], rest[length:]


def request(method, path, *headers, body=b""):
    lines = [f"{method} {path} HTTP/1.1".encode(), *headers]
    return b"\r\n".join(lines) + b"\r\n" + IDENTITY + b"\r\n" + body


def ping(*headers):
    return request("GET", "/v2/ping", *headers)


@pytest.fixture(scope="module")
def impatient_port():
    """A runner of its own, waiting READ_TIMEOUT seconds on a silent client."""
    with launch("--read-timeout", str(READ_TIMEOUT)) as runner:
        yield runner.port


@pytest.mark.parametrize("raw", [
    request("POST", "/v2/queues/raw/messages", b"Content-Length: 100", body=b"{}"),
    b"GET /v2/ping HTTP/1.1\r\nClient-ID: ",
], ids=["body-shorter-than-content-length", "headers-cut-short"])
def test_a_stalled_request_is_answered_408_after_the_read_timeout(impatient_port, raw):
    code, headers, body, rest = first_answer(talk(impatient_port, raw))
    assert (code, headers["connection"]) == (408, "close")
    assert json.loads(body)["title"] == "408 Request Timeout"
    assert rest == b""


def test_an_idle_connection_is_closed_after_the_read_timeout(impatient_port):
    assert talk(impatient_port, b"", timeout=10 * READ_TIMEOUT) == b""


@pytest.mark.parametrize("raw, status, title", [
    (b"GARBAGE\r\n\r\n", 400, "400 Bad Request"),
    (b"GET /v2/ping HTTP/1.x\r\n\r\n", 400, "400 Bad Request"),
    (b"GET /v2/ping HTTP/2.0\r\n\r\n", 505, "505 HTTP Version Not Supported"),
    (b"GET /" + b"q" * 70000 + b" HTTP/1.1\r\n\r\n", 414, "414 Request-URI Too Long"),
    (request("BREW", "/v2/ping"), 501, "501 Not Implemented"),
    (request("G\xc3\xa9T", "/v2/ping"), 501, "501 Not Implemented"),
    (ping(b"X-Long: " + b"a" * 70000), 431, "431 Request Header Fields Too Large"),
    (ping(*[b"X-Many: %d" % n for n in range(101)]), 431,
     "431 Request Header Fields Too Large"),
    # The parser took a line without a colon, and all after it, for a body.
    (ping(b"NoColonHere", b"Content-Length: 2"), 400, "400 Bad Request"),
    (ping(b"Content-Length: twelve"), 400, "400 Bad Request"),
    (ping(b"Content-Length: 1", b"Content-Length: 2"), 400, "400 Bad Request"),
    (request("POST", "/v2/queues/raw/messages", b"Transfer-Encoding: chunked",
             body=b"2\r\n{}\r\n0\r\n\r\n"), 411, "411 Length Required"),
    (request("POST", "/v2/queues/raw/messages", b"Content-Length: 99999999999"), 413,
     "413 Request Entity Too Large"),
    (request("POST", "/v2/queues/raw/messages", b"Content-Length: " + b"9" * 5000), 413,
     "413 Request Entity Too Large"),
], ids=["garbage", "bad-version", "http-2", "line-too-long", "unknown-method",
        "non-ascii-method", "header-too-long", "too-many-headers", "header-without-colon",
        "bad-content-length", "two-content-lengths", "chunked", "huge-content-length",
        "content-length-of-5000-digits"])
def test_a_malformed_request_gets_a_json_error_and_the_connection_closes(
        local_runner, raw, status, title):
    code, headers, body, rest = first_answer(talk(local_runner.port, raw))
    assert (code, headers["content-type"], headers["connection"]) == (
        status, "application/json", "close")
    error = json.loads(body)
    assert error["title"] == title
    assert error["description"]
    assert rest == b""


def test_a_head_answer_has_no_body_and_the_next_answer_follows(local_runner):
    received = talk(local_runner.port, request("HEAD", "/no/such/path")
                    + ping(b"Connection: close"))
    code, headers, body, rest = first_answer(received, head_only=True)
    assert (code, headers["content-length"]) == (404, str(len('{"title": "404 Not Found"}')))
    assert first_answer(rest)[0] == 204


def test_a_request_line_without_version_gets_a_status_line(local_runner):
    code, _, _, rest = first_answer(talk(local_runner.port, b"GET /v2/ping\r\n" + IDENTITY
                                         + b"\r\n"))
    assert (code, rest) == (204, b"")
