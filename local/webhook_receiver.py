"""A webhook receiver on 127.0.0.1, for tests and bench scripts: it answers
each POST with the next status of `answers` (the last one repeats), the
first after `slow_first` seconds, and records every request: when it came
(`at`, on the service's clock; `wall`, time.time()), its path, headers and
JSON body."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from chalicelib import clock as service_clock


class WebhookReceiver:
    def __init__(self, answers=(200,)):
        self.answers = list(answers)
        self.slow_first = 0
        self.received = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.received.append({
                        "at": service_clock.now_ms(), "wall": time.time(),
                        "path": self.path, "headers": self.headers, "json": json.loads(body)})
                    status = receiver.answers.pop(0) if len(receiver.answers) > 1 \
                        else receiver.answers[0]
                    delay, receiver.slow_first = receiver.slow_first, 0
                threading.Event().wait(delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def requests(self):
        """What it has received so far (a copy)."""
        with self.lock:
            return list(self.received)

    def bodies(self):
        return [request["json"] for request in self.requests()]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
