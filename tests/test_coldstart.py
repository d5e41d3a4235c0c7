"""`import app` is every function's cold start: it must not load what only
some of them need (docs/architecture.md, "Cold start"), and what is loaded
later must still follow the invocation's settings. Each check runs in a
fresh interpreter, as Lambda starts one."""
import json
import os
import subprocess
import sys
from pathlib import Path

from local.stage import stage_environment

ROOT = Path(__file__).resolve().parent.parent
# Each costs a cold start tens of ms or more; none is needed by every function.
DEFERRED = ("pynamodb", "botocore", "boto3", "jsonschema", "http.client", "ssl",
            "urllib.request", "concurrent.futures")

FIRST_REQUEST = """
import json, sys
import moto
moto.mock_aws().start()
import app
event = {"httpMethod": "GET", "path": "/v2/queues", "resource": "/v2/queues",
         "headers": {"client-id": "3381af92-2b9e-11e3-b191-71861300734c",
                     "x-project-id": "cold"},
         "multiValueQueryStringParameters": None, "pathParameters": None,
         "stageVariables": None, "body": None, "isBase64Encoded": False,
         "requestContext": {"httpMethod": "GET", "resourcePath": "/v2/queues",
                            "path": "/v2/queues", "requestId": "cold-start",
                            "identity": {"sourceIp": "127.0.0.1"}}}
status = app.app(event, None)["statusCode"]
from chalicelib.storage.models import MessageRecord, QueueRecord
print(json.dumps({"status": status,
                  "tables": [QueueRecord.Meta.table_name, MessageRecord.Meta.table_name]}))
"""


def run(script, **variables):
    environment = {**os.environ, **stage_environment("dev"), **variables}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=environment,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_import_app_loads_none_of_what_only_some_functions_need():
    report = run("import json, sys\nimport app\n"
                 f"print(json.dumps(sorted(n for n in {DEFERRED!r} if n in sys.modules)))")
    assert report == []


def test_the_stores_imported_later_follow_the_settings_of_the_invocation():
    # moto in place of AWS, without these tables: the request fails (503),
    # but against the tables this invocation's settings name.
    report = run(FIRST_REQUEST, QUEUES_TABLE="cold-queues", MESSAGES_TABLE="cold-messages")
    assert report["status"] == 503
    assert report["tables"] == ["cold-queues", "cold-messages"]
