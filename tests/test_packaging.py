"""The AWS package: what `infra/package.py` builds deploys and runs.

The package is built once per test process (~4 s), like a user would, with a
region but no credentials, and linted with cfn-lint. The zip is then run in a
Lambda-like interpreter: the zip's contents plus the runtime's boto3, nothing
from the dev venv. Select these tests alone with `-m packaging`.
"""
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from chalicelib.auth.gateway import gateway_responses, is_open
from chalicelib.config import get_settings
from chalicelib.storage.models import (
    ALL_MODELS,
    TTL_ATTRIBUTE,
    ConnectionRecord,
    KeyRecord,
    MessageRecord,
    QueueRecord,
    SubscriptionRecord,
)
from local.stage import stage_environment
from support.api import call, claim, create_queue, post_messages

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_SCRIPT = ROOT / "infra" / "package.py"
BIN = Path(sys.executable).parent
MAX_ZIP_BYTES = 2 * 1024 * 1024
TABLES = {QueueRecord: "QueuesTable", MessageRecord: "MessagesTable",
          SubscriptionRecord: "SubscriptionsTable", ConnectionRecord: "ConnectionsTable",
          KeyRecord: "KeysTable"}
# What the Lambda Python runtime provides besides the standard library.
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
# Swagger operations (Chalice writes no ANY method, but one would count).
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch",
                "x-amazon-apigateway-any-method")


def package(project_dir, out_dir, stage="dev"):
    """Run infra/package.py as a user would: a region, no credentials."""
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("AWS_")}
    environment["AWS_DEFAULT_REGION"] = "us-east-1"
    return subprocess.run(
        [sys.executable, str(PACKAGE_SCRIPT), "--project-dir", str(project_dir),
         "--stage", stage, "--out", str(out_dir)],
        env=environment, capture_output=True, text=True, timeout=120)


def cfn_lint(template_path):
    return subprocess.run([str(BIN / "cfn-lint"), str(template_path)],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("package")
    result = package(ROOT, out_dir)
    assert result.returncode == 0, result.stderr
    return out_dir / "deployment.zip", out_dir / "sam.json"


@pytest.fixture(scope="module")
def template(built):
    return json.loads(built[1].read_text())


def test_template_passes_cfn_lint(built):
    result = cfn_lint(built[1])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda model: model.__name__)
def test_tables_match_the_models(template, model):
    table = template["Resources"][TABLES[model]]
    assert table["Type"] == "AWS::DynamoDB::Table"
    props = table["Properties"]
    keys = [attribute for attribute in model.get_attributes().values()
            if attribute.is_hash_key or attribute.is_range_key]
    assert props["KeySchema"] == [
        {"AttributeName": key.attr_name, "KeyType": "HASH" if key.is_hash_key else "RANGE"}
        for key in sorted(keys, key=lambda key: not key.is_hash_key)]
    schema = model._get_schema()  # what create_table sends: keys, indexes
    assert sorted(props["AttributeDefinitions"], key=str) == sorted(
        schema["attribute_definitions"], key=str)
    assert {key.attr_name for key in keys} <= {
        definition["AttributeName"] for definition in props["AttributeDefinitions"]}
    assert props.get("GlobalSecondaryIndexes", []) == [
        {"IndexName": index["index_name"], "KeySchema": index["key_schema"],
         "Projection": index["projection"]} for index in schema["global_secondary_indexes"]]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    stream_view = getattr(model.Meta, "stream_view_type", None)
    assert props.get("StreamSpecification") == (
        {"StreamViewType": stream_view} if stream_view else None)


def test_functions_use_the_stacks_tables(template):
    variables = template["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert {name: variables[name] for name in
            ("QUEUES_TABLE", "MESSAGES_TABLE", "SUBSCRIPTIONS_TABLE", "CONNECTIONS_TABLE")} == {
        "QUEUES_TABLE": {"Ref": "QueuesTable"},
        "MESSAGES_TABLE": {"Ref": "MessagesTable"},
        "SUBSCRIPTIONS_TABLE": {"Ref": "SubscriptionsTable"},
        "CONNECTIONS_TABLE": {"Ref": "ConnectionsTable"}}


def test_gateway_answers_like_zaqar(template):
    responses = (template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
                 ["x-amazon-apigateway-gateway-responses"])
    unknown = responses["MISSING_AUTHENTICATION_TOKEN"]
    assert unknown["statusCode"] == "404"
    assert json.loads(unknown["responseTemplates"]["application/json"]) == {
        "title": "404 Not Found"}
    failed = responses["DEFAULT_5XX"]
    assert failed["statusCode"] == "503"
    body = json.loads(failed["responseTemplates"]["application/json"])
    assert body["title"] == "Service temporarily unavailable"
    assert body["description"].endswith(" Please try again in a few seconds.")


def test_zip_is_small_and_holds_the_app(built):
    zip_path = built[0]
    assert zip_path.stat().st_size < MAX_ZIP_BYTES
    names = set(zipfile.ZipFile(zip_path).namelist())
    for schema in (ROOT / "schemas").glob("*.json"):
        assert f"schemas/{schema.name}" in names
    assert "app.py" in names and "chalicelib/validation.py" in names
    assert "pynamodb/models.py" in names
    assert not any(name.startswith(("botocore/", "boto3/")) for name in names)
    # Every module's bytecode, for the runtime's Python: no cold start compiles.
    modules = {name for name in names if name.endswith(".py")}
    assert {name for name in modules
            if cached(name) not in names} == set()
    assert not any("/tests/" in name for name in names)  # vendored test suites


def cached(module):
    """Where a module's bytecode lies in the zip, for the runtime's Python."""
    folder, _, name = module.rpartition("/")
    pyc = f"__pycache__/{name[:-3]}.{sys.implementation.cache_tag}.pyc"
    return f"{folder}/{pyc}" if folder else pyc


PROBE = """
import json, sys
sys.path[:0] = sys.argv[1:3]
import app
import botocore, pynamodb


def call(method, resource, path_parameters=None, body=None):
    headers = {"Client-ID": "3381af92-2b9e-11e3-b191-71861300734c",
               "X-Project-ID": "probe", "Content-Type": "application/json"}
    event = {"httpMethod": method, "path": resource, "headers": headers,
             "multiValueQueryStringParameters": None, "pathParameters": path_parameters,
             "stageVariables": None, "body": body, "isBase64Encoded": False,
             "requestContext": {"httpMethod": method, "resourcePath": resource,
                                "stage": "dev", "requestId": "probe", "apiId": "probe",
                                "identity": {"sourceIp": "127.0.0.1"}}}
    response = app.app(event, None)
    return {"status": response["statusCode"], "body": response["body"]}


print(json.dumps({
    "origins": {module.__name__: module.__file__
                for module in (app, botocore, pynamodb)},
    "versions": call("GET", "/"),
    "bad_metadata": call("PUT", "/v2/queues/{queue_name}", {"queue_name": "probe"},
                         json.dumps({"_default_message_ttl": "soon"})),
}))
"""


def test_zip_runs_without_the_dev_venv(built, tmp_path):
    task = tmp_path / "task"
    zipfile.ZipFile(built[0]).extractall(task)
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    for name in RUNTIME_MODULES:
        origin = Path(importlib.util.find_spec(name).origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (runtime / source.name).symlink_to(source)
    environment = dict(stage_environment("dev"), AWS_DEFAULT_REGION="us-east-1",
                       AWS_REGION="us-east-1")
    # -I -S: no site-packages, no user site, no PYTHON* variables, no cwd.
    unpacked = set(task.rglob("*"))
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", PROBE, str(task), str(runtime)],
        env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # Python wrote no bytecode: what it imported was compiled in the zip.
    assert set(task.rglob("*")) == unpacked
    # The report is the last line; before it, the app's line for each request.
    *logged, report = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(line["kind"], line["status"]) for line in logged] == [
        ("request", 300), ("request", 400)]

    origins = report["origins"]
    assert origins["botocore"].startswith(str(runtime))
    for name in ("app", "pynamodb"):
        assert origins[name].startswith(str(task)), origins
    assert report["versions"]["status"] == 300  # Zaqar's "Multiple Choices"
    assert json.loads(report["versions"]["body"])["versions"][0]["id"] == "2"
    # Answered from schemas/queue_metadata.json, found at the zip root.
    assert report["bad_metadata"]["status"] == 400
    assert json.loads(report["bad_metadata"]["body"])["description"] == (
        "_default_message_ttl must be integer.")


# -- handlers the app does not have yet: streams and websockets --------------

EVENT_APP = '''
import os
from chalice import Chalice

app = Chalice(app_name="events")
app.experimental_feature_flags.update(["WEBSOCKETS"])
# Stage variables are set while Chalice packages, so the ARN names the stage's table.
MESSAGES_STREAM = ("arn:aws:dynamodb:us-east-1:000000000000:table/%s/stream/local"
                   % os.environ.get("MESSAGES_TABLE"))


@app.route("/")
def index():
    return {}


@app.on_dynamodb_record(stream_arn=MESSAGES_STREAM)
def notify_subscribers(event):
    return {"batchItemFailures": []}


@app.on_ws_message()
def message(event):
    pass


@app.lambda_function(name="authorize")
def authorize(event, context):
    return {}
'''


NEW_MESSAGES_ONLY = {"eventName": ["INSERT"],
                     "dynamodb": {"NewImage": {"sk": {"S": [{"prefix": "m#"}]}}}}


def event_app_project(directory, app_source=EVENT_APP, filtered_handler="notify_subscribers",
                      stage_variables=None):
    """A project with the real stage config and policy, a stream handler,
    a websocket handler and an authorizer, and a stream filter for one
    handler. stage_variables: {stage: {variable: value}} added to a stage's
    variables (a stage the config lacks starts as a copy of dev)."""
    directory.mkdir(exist_ok=True)
    (directory / "app.py").write_text(textwrap.dedent(app_source))
    shutil.copytree(ROOT / ".chalice", directory / ".chalice",
                    ignore=shutil.ignore_patterns("deployments", "deployed"))
    config_path = directory / ".chalice" / "config.json"
    config = json.loads(config_path.read_text())
    # The real config's per-function settings name the real app's handlers.
    config["lambda_functions"] = {filtered_handler: {"stream_filters": [NEW_MESSAGES_ONLY]}}
    for stage, variables in (stage_variables or {}).items():
        section = config["stages"].setdefault(stage, json.loads(json.dumps(
            config["stages"]["dev"])))
        section["environment_variables"].update(variables)
    config_path.write_text(json.dumps(config))
    return directory


TRUSTEE_PASSWORD = "/zaqar/prod/trustee-password"  # an SSM parameter's name


@pytest.fixture(scope="module")
def event_app_template(tmp_path_factory):
    project = event_app_project(tmp_path_factory.mktemp("events-app"), stage_variables={
        "prod": {"KEYSTONE_TRUSTEE_PASSWORD_PARAMETER": TRUSTEE_PASSWORD,
                 "REQUIRE_CONFIRMATION": "true"}})
    result = package(project, project / "out", stage="prod")
    assert result.returncode == 0, result.stderr
    return project / "out" / "sam.json"


@pytest.fixture(scope="module")
def pooling_template(tmp_path_factory):
    project = event_app_project(tmp_path_factory.mktemp("pooling-app"), stage_variables={
        "prod": {"POOLING": "true", "ADMIN_MODE": "true"}})
    result = package(project, project / "out", stage="prod")
    assert result.returncode == 0, result.stderr
    return json.loads((project / "out" / "sam.json").read_text())


def test_a_pooling_stage_grants_its_pools_tables_as_the_stages_messages_table(
        pooling_template, prod_template):
    pool_tables = {"Fn::Sub": "arn:${AWS::Partition}:dynamodb:*:${AWS::AccountId}:"
                              "table/zaqar-prod-pool-*"}
    on_messages = {function_id for function_id in functions(pooling_template)
                   if "MessagesTable" in table_actions(pooling_template, function_id)}
    assert on_messages and holders(pooling_template, "PoolTables") == on_messages
    for function_id in on_messages:
        granted = role_statements(pooling_template, function_id)["PoolTables"]
        assert granted["Resource"] == pool_tables
        assert set(granted["Action"]) == {
            f"dynamodb:{action}" for action in
            table_actions(pooling_template, function_id)["MessagesTable"] | {"DescribeTable"}}
    streams = role_statements(pooling_template, "NotifySubscribers")["MessageStream"]["Resource"]
    assert streams == [{"Fn::Sub": "${MessagesTable.Arn}/stream/*"},
                       {"Fn::Sub": pool_tables["Fn::Sub"] + "/stream/*"}]
    assert holders(prod_template, "PoolTables") == set()


def test_stream_handler_is_bound_and_bounded(event_app_template):
    resources = json.loads(event_app_template.read_text())["Resources"]
    source = (resources["NotifySubscribers"]["Properties"]["Events"]
              ["NotifySubscribersDynamodbEventSource"])
    settings = source["Properties"]
    assert settings["Stream"] == {"Fn::GetAtt": ["MessagesTable", "StreamArn"]}
    assert settings["BisectBatchOnFunctionError"] is True
    assert settings["MaximumRetryAttempts"] > 0
    assert settings["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert settings["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["StreamFailureQueue", "Arn"]}
    assert resources["StreamFailureQueue"]["Type"] == "AWS::SQS::Queue"
    assert [json.loads(entry["Pattern"]) for entry in settings["FilterCriteria"]["Filters"]] == [
        NEW_MESSAGES_ONLY]

    def statements(role):
        return {statement["Sid"]: statement for statement in
                resources[role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]}
    notify = statements("NotifySubscribersRole")
    assert notify["MessageStream"]["Resource"] == {"Fn::Sub": "${MessagesTable.Arn}/stream/*"}
    assert notify["StreamFailures"]["Action"] == "sqs:SendMessage"
    websocket = statements("WebsocketMessageRole")
    assert "MessageStream" not in websocket and "StreamFailures" not in websocket
    assert websocket["WebsocketPush"]["Resource"] == {"Fn::Sub": (
        "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
        "${WebsocketAPI}/*/*/@connections/*")}


def test_event_app_template_passes_cfn_lint(event_app_template):
    result = cfn_lint(event_app_template)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("app_source, filtered_handler, complaint", [
    (EVENT_APP.replace('% os.environ.get("MESSAGES_TABLE")', '% "zaqar-dev-messages"'),
     "notify_subscribers", "'arn:aws:dynamodb:us-east-1:000000000000:table/zaqar-dev-messages/"
               "stream/local' is not the stream of a table of this stage"),
    (EVENT_APP, "notfiy", "stream settings for ['Notfiy'], which have no DynamoDB"),
], ids=["stream of another stage", "filter for a missing handler"])
def test_packaging_refuses_misbound_streams(tmp_path, app_source, filtered_handler, complaint):
    project = event_app_project(tmp_path / "project", app_source, filtered_handler)
    result = package(project, project / "out", stage="prod")
    assert result.returncode != 0
    assert complaint in result.stderr
    assert not (project / "out" / "sam.json").exists()


def test_stats_handler_waits_to_fill_its_batches(template):
    # At low traffic each stream record would otherwise cost its own counter
    # update; the notification handler keeps its latency (no window).
    events = {function_id: event["Properties"]
              for function_id, function in template["Resources"].items()
              if function["Type"] == "AWS::Serverless::Function"
              for event in function["Properties"].get("Events", {}).values()
              if event["Type"] == "DynamoDB"}
    assert events["CountMessages"]["MaximumBatchingWindowInSeconds"] == 5
    assert events["NotifySubscribers"]["MaximumBatchingWindowInSeconds"] == 0


# -- authentication: the prod stage authenticates with Keystone, dev does not --

@pytest.fixture(scope="module")
def prod_built(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("package-prod")
    result = package(ROOT, out_dir, stage="prod")
    assert result.returncode == 0, result.stderr
    return out_dir / "sam.json"


@pytest.fixture(scope="module")
def prod_template(prod_built):
    return json.loads(prod_built.read_text())


def swagger_of(template):
    return template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]


def operations(template):
    """{(METHOD, path): swagger operation}, for every route the template has."""
    return {("ANY" if method.startswith("x-") else method.upper(), path): operation
            for path, methods in swagger_of(template)["paths"].items()
            for method, operation in methods.items() if method in HTTP_METHODS}


def functions(template):
    return {function_id: resource["Properties"]
            for function_id, resource in template["Resources"].items()
            if resource["Type"] == "AWS::Serverless::Function"}


def statements_of(template, role):
    return {statement["Sid"]: statement for statement in
            template["Resources"][role]["Properties"]["Policies"][0]
            ["PolicyDocument"]["Statement"]}


def test_prod_template_passes_cfn_lint(prod_built):
    result = cfn_lint(prod_built)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prod_authorizer_guards_every_route_but_the_open_ones(prod_template):
    swagger = swagger_of(prod_template)
    [(name, scheme)] = swagger["securityDefinitions"].items()
    assert scheme["x-amazon-apigateway-authtype"] == "custom"
    authorizer = scheme["x-amazon-apigateway-authorizer"]
    # REQUEST and uncached, with no identity source: signed URLs carry no token.
    assert authorizer["type"] == "request"
    assert authorizer["authorizerResultTtlInSeconds"] == 0
    assert "identitySource" not in authorizer
    assert "${Authorize.Arn}" in authorizer["authorizerUri"]["Fn::Sub"]
    assert functions(prod_template)["Authorize"]["Handler"] == "app.authorize"

    routes = operations(prod_template)
    assert len(routes) > 50  # every route of the app, fallbacks included
    unguarded = {route for route, operation in routes.items() if "security" not in operation}
    # The versions document, and OPTIONS everywhere: CORS preflights carry no token.
    preflights = {route for route in routes if route[0] == "OPTIONS"}
    assert len(preflights) == len(swagger["paths"])
    assert unguarded == {("GET", "/"), ("GET", "/v2/openapi.json")} | preflights == {
        route for route in routes if is_open(*route)}
    for route, operation in routes.items():
        if route not in unguarded:
            assert operation["security"] == [{name: []}], route


def test_api_gateway_may_invoke_the_authorizer(prod_template):
    [permission] = [resource["Properties"] for resource in prod_template["Resources"].values()
                    if resource["Type"] == "AWS::Lambda::Permission"
                    and resource["Properties"]["FunctionName"] == {"Ref": "Authorize"}]
    assert permission["Action"] == "lambda:InvokeFunction"
    assert permission["Principal"] == "apigateway.amazonaws.com"
    assert permission["SourceArn"]["Fn::Sub"].endswith(":${RestAPI}/authorizers/*")


def test_gateway_refuses_like_keystonemiddleware(prod_template):
    responses = swagger_of(prod_template)["x-amazon-apigateway-gateway-responses"]
    assert {"MISSING_AUTHENTICATION_TOKEN", "DEFAULT_5XX"} <= set(responses)  # kept
    expected = gateway_responses(get_settings({"KEYSTONE_URL": "https://keystone.example/v3"}))

    refused = responses["UNAUTHORIZED"]
    assert refused["statusCode"] == "401"
    body = json.loads(refused["responseTemplates"]["application/json"])
    assert body == expected["UNAUTHORIZED"][2]
    assert body["description"] == "The request you have made requires authentication."
    headers = refused["responseParameters"]
    assert headers["gatewayresponse.header.WWW-Authenticate"] == {
        "Fn::Sub": "'Keystone uri=\"${KeystoneUrl}\"'"}
    assert headers["gatewayresponse.header.Content-Type"] == "'application/json'"

    failed = responses["AUTHORIZER_FAILURE"]
    assert failed["statusCode"] == "503"
    assert json.loads(failed["responseTemplates"]["application/json"]) == (
        expected["AUTHORIZER_FAILURE"][2])


def test_authorizer_role_only_writes_logs(prod_template):
    role = functions(prod_template)["Authorize"]["Role"]["Fn::GetAtt"][0]
    assert set(statements_of(prod_template, role)) == {"Logs", "Traces"}  # X-Ray: prod traces
    assert "dynamodb" not in json.dumps(prod_template["Resources"][role])


def test_prod_keystone_url_is_a_parameter_and_no_secret_is_plain(prod_template):
    parameter = prod_template["Parameters"]["KeystoneUrl"]
    assert parameter["Type"] == "String" and "Default" not in parameter
    pattern = re.compile(parameter["AllowedPattern"])
    assert pattern.match("https://keystone.example.com:5000/v3")
    assert not pattern.match("keystone.example.com") and not pattern.match('https://k"/v3')
    for function_id, properties in functions(prod_template).items():
        variables = properties["Environment"]["Variables"]
        assert variables["KEYSTONE_URL"] == {"Ref": "KeystoneUrl"}, function_id
        for variable, value in variables.items():
            assert not (isinstance(value, str) and re.match(r"https?://", value)), variable
            assert (not re.search("PASSWORD|SECRET", variable)
                    or variable.endswith("_PARAMETER")), variable


def test_dev_template_has_no_authorizer(template):
    swagger = swagger_of(template)
    assert "securityDefinitions" not in swagger
    assert all("security" not in operation for operation in operations(template).values())
    assert "UNAUTHORIZED" not in swagger["x-amazon-apigateway-gateway-responses"]
    # Nothing would call it: the function is left out, its role with it.
    assert "Authorize" not in template["Resources"]
    assert "AuthorizeRole" not in template["Resources"]
    assert "KeystoneUrl" not in template.get("Parameters", {})


def test_functions_get_only_the_names_of_the_ssm_secrets_they_read(event_app_template):
    """The stage names the trustee's password; the signed URL key's name is
    the stack parameter SignedUrlSecretKeyParameter."""
    template = json.loads(event_app_template.read_text())
    prefix = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter"
    trustee = {"Fn::Sub": prefix + TRUSTEE_PASSWORD}
    signing = {"Fn::Sub": prefix + "${SignedUrlSecretKeyParameter}"}
    expected = {"APIHandler": [trustee, signing], "WebsocketMessage": [trustee, signing],
                # Deliveries to trust+ subscribers; trust-scoped tokens.
                "NotifySubscribers": [trustee], "Authorize": [trustee]}
    assert set(functions(template)) == set(expected)
    for function_id, properties in functions(template).items():
        granted = statements_of(template, properties["Role"]["Fn::GetAtt"][0])["Parameters"]
        assert granted["Action"] == "ssm:GetParameter"
        assert granted["Resource"] == expected[function_id], function_id
        names = {name: value for name, value in properties["Environment"]["Variables"].items()
                 if name.endswith("_PARAMETER")}
        assert names == dict([("KEYSTONE_TRUSTEE_PASSWORD_PARAMETER", TRUSTEE_PASSWORD)]
                             + ([("SIGNED_URL_SECRET_KEY_PARAMETER",
                                  {"Ref": "SignedUrlSecretKeyParameter"})]
                                if signing in expected[function_id] else []))
    assert template["Parameters"]["SignedUrlSecretKeyParameter"]["Default"] == (
        "/zaqar/prod/signed-url-secret-key")


NOAUTH_STAGE = {"STAGE": "staging", "AUTH_STRATEGY": "noauth"}


@pytest.mark.parametrize("stage, variables, complaint", [
    ("staging", NOAUTH_STAGE,
     "stage 'staging' has AUTH_STRATEGY=noauth: anyone could act for any project"),
    ("prod", {"KEYSTONE_TRUSTEE_PASSWORD": "hunter2"},
     "stage 'prod' has secrets in plain text (KEYSTONE_TRUSTEE_PASSWORD)"),
    ("prod", {"KEYSTONE_URL": 'https://keystone"/v3'}, "is not an http(s) URL"),
    ("prod", {"POLICY": "not json"}, "stage 'prod': POLICY:"),
    ("prod", {"OTHER_SECRET_PARAMETER": "/zaqar/prod/other"},
     "no function reads OTHER_SECRET_PARAMETER"),
], ids=["noauth outside dev", "plain password", "bad keystone url", "bad policy",
        "a secret no function reads"])
def test_packaging_refuses_unsafe_stages(tmp_path, stage, variables, complaint):
    project = event_app_project(tmp_path / "project", stage_variables={stage: variables})
    (project / "out").mkdir()
    (project / "out" / "sam.json").write_text("{}")  # a previous build's
    result = package(project, project / "out", stage=stage)
    assert result.returncode != 0
    assert complaint in result.stderr
    assert not (project / "out" / "sam.json").exists()


def test_noauth_outside_dev_needs_allow_noauth(tmp_path):
    project = event_app_project(tmp_path / "project", stage_variables={
        "staging": dict(NOAUTH_STAGE, ALLOW_NOAUTH="true")})
    result = package(project, project / "out", stage="staging")
    assert result.returncode == 0, result.stderr
    template = json.loads((project / "out" / "sam.json").read_text())
    assert "securityDefinitions" not in swagger_of(template)
    assert "Authorize" not in template["Resources"]


# -- least privilege: each function's role allows what it does, no more ----------

def role_statements(template, function_id):
    return statements_of(template, functions(template)[function_id]["Role"]["Fn::GetAtt"][0])


def table_actions(template, function_id):
    """{table's logical id: DynamoDB actions} the function's role allows."""
    found = {}
    for statement in role_statements(template, function_id).values():
        if statement["Resource"] in [{"Fn::GetAtt": [table, "Arn"]} for table in TABLES.values()]:
            table = statement["Resource"]["Fn::GetAtt"][0]
            assert table not in found, f"{function_id}: two statements on {table}"
            found[table] = {action.removeprefix("dynamodb:") for action in statement["Action"]}
    return found


def holders(template, sid):
    return {function_id for function_id in functions(template)
            if sid in role_statements(template, function_id)}


def test_the_api_may_do_what_its_routes_do_and_never_scan(prod_template):
    assert table_actions(prod_template, "APIHandler") == {
        "QueuesTable": {"GetItem", "Query", "PutItem", "UpdateItem", "DeleteItem"},
        "MessagesTable": {"GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem",
                          "DeleteItem", "BatchWriteItem"},
        "SubscriptionsTable": {"GetItem", "Query", "PutItem", "UpdateItem", "DeleteItem",
                               "BatchWriteItem"}}  # no connections: websocket only
    # The sweeper alone scans, and only the queues.
    scans = {(function_id, table) for function_id in functions(prod_template)
             for table, actions in table_actions(prod_template, function_id).items()
             if "Scan" in actions}
    assert scans == {("Sweep", "QueuesTable")}


def test_each_function_touches_only_its_tables(prod_template):
    assert {function_id: set(table_actions(prod_template, function_id))
            for function_id in functions(prod_template)} == {
        "APIHandler": {"QueuesTable", "MessagesTable", "SubscriptionsTable"},
        "Authorize": set(),
        "Sweep": {"QueuesTable", "MessagesTable"},
        "CountMessages": {"QueuesTable", "MessagesTable"},
        "NotifySubscribers": {"QueuesTable", "SubscriptionsTable", "ConnectionsTable"},
        "RetryNotifications": {"SubscriptionsTable", "ConnectionsTable"},
        "WebsocketConnect": {"ConnectionsTable"},
        "WebsocketMessage": {"QueuesTable", "MessagesTable", "SubscriptionsTable",
                             "ConnectionsTable"},
        "WebsocketDisconnect": {"SubscriptionsTable", "ConnectionsTable"}}
    # Stream handlers read the queues they count or notify for, and write none.
    assert table_actions(prod_template, "CountMessages")["QueuesTable"] == {"GetItem"}
    assert table_actions(prod_template, "NotifySubscribers")["QueuesTable"] == {"GetItem"}
    assert table_actions(prod_template, "WebsocketConnect") == {"ConnectionsTable": {"PutItem"}}


def test_roles_name_exact_resources(prod_template):
    for function_id in functions(prod_template):
        statements = role_statements(prod_template, function_id)
        assert statements["Logs"] == {
            "Sid": "Logs", "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": {"Fn::GetAtt": [f"{function_id}LogGroup", "Arn"]}}
        for sid, statement in statements.items():
            # X-Ray's actions have no resource to name.
            assert (statement["Resource"] == "*") == (sid == "Traces"), (function_id, sid)
            assert "zaqar-" not in json.dumps(statement)
    # prod names no trustee: the authorizer reads no secret either.
    assert set(role_statements(prod_template, "Authorize")) == {"Logs", "Traces"}


def test_only_delivery_sends_mail_and_only_from_the_configured_address(prod_template):
    # prod asks for no confirmations: the API and the websocket send no mail.
    assert holders(prod_template, "Mail") == {"NotifySubscribers", "RetryNotifications"}
    mail = role_statements(prod_template, "NotifySubscribers")["Mail"]
    assert mail["Action"] == ["ses:SendEmail", "ses:SendRawEmail"]
    identity = "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${Identity}"
    assert mail["Resource"] == [
        {"Fn::Sub": [identity, {"Identity": {"Ref": "SesFromAddress"}}]},
        {"Fn::Sub": [identity, {"Identity": {"Fn::Select": [1, {"Fn::Split": [
            "@", {"Ref": "SesFromAddress"}]}]}}]}]


def test_confirmations_let_the_subscribing_paths_send_mail(event_app_template):
    template = json.loads(event_app_template.read_text())  # REQUIRE_CONFIRMATION=true
    assert holders(template, "Mail") == {"APIHandler", "WebsocketMessage", "NotifySubscribers"}


def test_only_websocket_paths_manage_connections_and_streams_are_read_by_their_handlers(
        prod_template):
    assert holders(prod_template, "WebsocketPush") == {
        "WebsocketMessage", "NotifySubscribers", "RetryNotifications"}
    push = role_statements(prod_template, "WebsocketMessage")["WebsocketPush"]
    assert push["Resource"]["Fn::Sub"].endswith(":${WebsocketAPI}/*/*/@connections/*")
    assert holders(prod_template, "MessageStream") == {"CountMessages", "NotifySubscribers"}
    assert holders(prod_template, "StreamFailures") == {"CountMessages", "NotifySubscribers"}


# -- operating it: encryption, logs, traces, alarms, parameters, checkov --------

def resources_of(template, kind):
    return {name: resource for name, resource in template["Resources"].items()
            if resource["Type"] == kind}


def test_tables_are_encrypted_and_prods_cannot_be_deleted(prod_template, template):
    for stage_template, protected in ((prod_template, True), (template, False)):
        for table in resources_of(stage_template, "AWS::DynamoDB::Table").values():
            props = table["Properties"]
            assert props["SSESpecification"] == {
                "SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": "alias/aws/dynamodb"}
            assert props["DeletionProtectionEnabled"] is protected
            assert props["PointInTimeRecoverySpecification"] == {
                "PointInTimeRecoveryEnabled": True}
            assert table["DeletionPolicy"] == "Retain"


def test_every_function_and_api_logs_into_a_group_kept_for_a_while(prod_template):
    resources = prod_template["Resources"]
    retention = {"Ref": "LogRetentionDays"}
    assert prod_template["Parameters"]["LogRetentionDays"]["Default"] == 30
    for function_id, properties in functions(prod_template).items():
        assert properties["LoggingConfig"] == {"LogGroup": {"Ref": f"{function_id}LogGroup"}}
        assert resources[f"{function_id}LogGroup"]["Properties"]["RetentionInDays"] == retention
    rest = resources["RestAPI"]["Properties"]["AccessLogSetting"]
    assert rest["DestinationArn"]["Fn::Sub"].endswith(":log-group:${RestApiAccessLogs}")
    assert json.loads(rest["Format"])["requestId"] == "$context.requestId"
    websocket = resources["WebsocketAPIStage"]["Properties"]["AccessLogSettings"]
    assert websocket["DestinationArn"]["Fn::Sub"].endswith(":log-group:${WebsocketApiAccessLogs}")
    assert json.loads(websocket["Format"])["connectionId"] == "$context.connectionId"
    for logs in ("RestApiAccessLogs", "WebsocketApiAccessLogs"):
        assert resources[logs]["Properties"]["RetentionInDays"] == retention
    # API Gateway writes access logs through the account's CloudWatch role.
    assert resources["ApiGatewayAccount"]["Properties"]["CloudWatchRoleArn"] == {
        "Fn::GetAtt": ["ApiGatewayLogsRole", "Arn"]}
    assert resources["RestAPI"]["DependsOn"] == "ApiGatewayAccount"
    assert resources["WebsocketAPIStage"]["DependsOn"] == "ApiGatewayAccount"


def test_tracing_is_the_stages_choice(prod_template, template):
    # prod sets "xray": true in .chalice/config.json; dev does not.
    for stage_template, traced in ((prod_template, True), (template, False)):
        for function_id, properties in functions(stage_template).items():
            assert properties["Tracing"] == ("Active" if traced else "PassThrough")
            assert ("Traces" in role_statements(stage_template, function_id)) is traced
        assert rest_api_properties(stage_template)["TracingEnabled"] is traced


def rest_api_properties(template):
    return template["Resources"]["RestAPI"]["Properties"]


def test_alarms_watch_what_needs_a_human(prod_template):
    alarms = {name: resource["Properties"] for name, resource
              in resources_of(prod_template, "AWS::CloudWatch::Alarm").items()}
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]

    def watched(metric):
        return {alarm["Dimensions"][0]["Value"].get("Ref", json.dumps(
                    alarm["Dimensions"][0]["Value"])): alarm
                for alarm in alarms.values() if alarm["MetricName"] == metric}
    errors = watched("Errors")
    assert set(errors) == set(functions(prod_template))
    assert all(alarm["Threshold"] == 1 and alarm["Statistic"] == "Sum"
               for alarm in errors.values())
    ages = watched("IteratorAge")
    assert set(ages) == {"CountMessages", "NotifySubscribers"}
    assert all(alarm["Threshold"] == 60_000 and alarm["Statistic"] == "Maximum"
               for alarm in ages.values())
    for metric in ("ReadThrottleEvents", "WriteThrottleEvents"):
        assert set(watched(metric)) == set(TABLES.values())
    [depth] = watched("ApproximateNumberOfMessagesVisible").values()
    assert depth["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["StreamFailureQueue", "QueueName"]}
    assert (depth["ComparisonOperator"], depth["Threshold"]) == ("GreaterThanThreshold", 0)
    topic = prod_template["Resources"]["AlarmTopicEmail"]
    assert topic["Condition"] == "HasAlarmEmail"
    assert topic["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}


def test_prod_stack_takes_its_settings_as_parameters_and_gives_its_urls(prod_template):
    parameters = prod_template["Parameters"]
    assert set(parameters) == {
        "KeystoneUrl", "SesFromAddress", "CorsAllowedOrigins", "SignedUrlSecretKeyParameter",
        "MaxMessagesPostSize",
        "MaxMessagesPerPost", "MaxQueueMetadata", "DefaultMessageTtl", "MaxMessageTtl",
        "MaxClaimTtl", "LogRetentionDays", "AlarmEmail"}
    assert {name for name, parameter in parameters.items() if "Default" not in parameter} == {
        "KeystoneUrl", "SesFromAddress"}
    # A limit's default is the stage's value.
    assert parameters["MaxMessagesPostSize"]["Default"] == (
        stage_environment("prod")["MAX_MESSAGES_POST_SIZE"])
    for properties in functions(prod_template).values():
        variables = properties["Environment"]["Variables"]
        assert variables["CORS_ALLOWED_ORIGINS"] == {"Ref": "CorsAllowedOrigins"}
        assert variables["SES_FROM_ADDRESS"] == {"Ref": "SesFromAddress"}
        assert variables["MAX_MESSAGES_POST_SIZE"] == {"Ref": "MaxMessagesPostSize"}
    outputs = prod_template["Outputs"]
    assert outputs["EndpointURL"]["Value"] == {"Fn::Sub": (
        "https://${RestAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}/v2/")}
    assert outputs["WebsocketConnectEndpointURL"]["Value"] == {"Fn::Sub": (
        "wss://${WebsocketAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}/v2/")}
    assert outputs["AlarmTopicArn"]["Value"] == {"Ref": "AlarmTopic"}


CHECKOV = ROOT / ".local" / "checkov" / "venv" / "bin" / "checkov"


def test_checkov_leaves_no_finding_unexplained(prod_built, prod_template):
    assert CHECKOV.exists(), "install checkov: make .local/checkov/.installed"
    result = subprocess.run(
        [str(CHECKOV), "--file", str(prod_built), "--framework", "cloudformation",
         "--skip-download", "--compact", "--output", "json"],
        capture_output=True, text=True, timeout=300, cwd=prod_built.parent)
    report = json.loads(result.stdout)
    failed = [(check["check_id"], check["resource"], check["check_name"])
              for check in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["passed"] > 100
    # Each skip is written on its resource, with its reason.
    for resource in prod_template["Resources"].values():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert re.fullmatch(r"CKV_AWS_\d+", skip["id"]) and len(skip["comment"]) > 40
    skipped = {check["check_id"] for check in report["results"]["skipped_checks"]}
    assert skipped == {"CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173",
                       "CKV_AWS_158", "CKV_AWS_120", "CKV_AWS_27", "CKV_AWS_26"}


def test_schedules_have_reserved_concurrency(prod_template):
    reserved = {function_id: properties.get("ReservedConcurrentExecutions")
                for function_id, properties in functions(prod_template).items()}
    assert {function_id for function_id, value in reserved.items() if value} == {
        "Sweep", "RetryNotifications"}


# -- deploying: the commands, checked as far as they can be without AWS ---------

sys.path.insert(0, str(ROOT / "infra"))
import package as infra_package  # noqa: E402


def test_deploy_runs_package_then_a_change_set(tmp_path):
    template_path = tmp_path / "sam.json"
    assert infra_package.deploy_commands(template_path, "zaqar-prod", "my-bucket", {
        "SesFromAddress": "zaqar@example.com",
        "KeystoneUrl": "https://keystone.example.com:5000/v3"}) == [
        ["aws", "cloudformation", "package", "--template-file", str(template_path),
         "--s3-bucket", "my-bucket", "--s3-prefix", "zaqar-prod", "--use-json",
         "--output-template-file", str(tmp_path / "packaged.json")],
        ["aws", "cloudformation", "deploy", "--template-file", str(tmp_path / "packaged.json"),
         "--stack-name", "zaqar-prod", "--capabilities", "CAPABILITY_IAM",
         "CAPABILITY_AUTO_EXPAND", "--no-fail-on-empty-changeset", "--parameter-overrides",
         "KeystoneUrl=https://keystone.example.com:5000/v3",
         "SesFromAddress=zaqar@example.com"]]


def test_make_deploy_hands_its_variables_to_the_packager():
    result = subprocess.run(
        ["make", "-n", "-o", ".venv/.requirements-installed", "deploy", "STAGE=prod",
         "ARCH=arm64", "S3_BUCKET=my-bucket",
         "PARAMETERS=KeystoneUrl=https://k.example/v3 SesFromAddress=z@example.com"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
        # As typed in a shell, also when this suite runs under `make test`
        # (a sub-make would print its directory and inherit make's flags).
        env={name: value for name, value in os.environ.items()
             if name not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")})
    assert result.returncode == 0, result.stderr
    assert [word for word in result.stdout.split() if word != "\\"] == [
        ".venv/bin/python", "infra/package.py", "--stage", "prod", "--arch", "arm64",
        "--out", "build/package/prod-arm64", "--deploy", "--stack-name", "zaqar-prod",
        "--s3-bucket", "my-bucket", "--parameter", "KeystoneUrl=https://k.example/v3",
        "--parameter", "SesFromAddress=z@example.com"]


@pytest.mark.parametrize("parameters, bucket, complaint", [
    ({"SesFromAddress": "z@example.com"}, "b", "give KeystoneUrl=... in PARAMETERS"),
    ({"KeystoneUrl": "https://k/v3", "SesFromAddress": "z@example.com", "Colour": "red"},
     "b", "the stack has no parameter Colour"),
    ({"KeystoneUrl": "https://k/v3", "SesFromAddress": "z@example.com"}, None,
     "name the S3 bucket"),
    ({"KeystoneUrl": "https://k/v3", "SesFromAddress": "z@example.com"}, "b",
     "`aws` (the AWS CLI) is not on PATH"),
], ids=["required parameter missing", "unknown parameter", "no bucket", "no aws cli"])
def test_deploy_refuses_before_calling_aws(prod_built, monkeypatch, parameters, bucket,
                                           complaint):
    monkeypatch.setenv("PATH", "/nonexistent")  # no `aws`, whatever the machine has
    with pytest.raises(infra_package.PackagingError, match=re.escape(complaint)):
        infra_package.deploy(prod_built, "zaqar-prod", bucket, parameters)


def test_an_arm64_package_carries_no_other_architecture(tmp_path):
    zip_path = infra_package.build_zip("dev", "arm64", tmp_path)
    template = json.loads((tmp_path / "sam.json").read_text())
    assert {tuple(properties["Architectures"]) for properties in functions(template).values()
            } == {("arm64",)}
    # The package is pure Python now (no jsonschema, no rpds-py); a compiled
    # wheel that comes back must be the arm64 one.
    binaries = [name for name in zipfile.ZipFile(zip_path).namelist() if name.endswith(".so")]
    assert all("aarch64" in name for name in binaries), binaries
    assert zip_path.stat().st_size < MAX_ZIP_BYTES
    print(f"arm64 zip: {zip_path.stat().st_size / 1e6:.2f} MB")


# -- what the API really calls, under moto, is what its role allows ---------------

TRANSACTION_PARTS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                     "ConditionCheck": "ConditionCheckItem"}


@pytest.fixture
def dynamodb_calls(monkeypatch):
    """{(DynamoDB action, table name)} of every call made while the test
    runs; a transaction counts as the action of each of its parts, as IAM
    authorises it."""
    import botocore.client
    calls, real = set(), botocore.client.BaseClient._make_api_call

    def record(client, operation, params):
        if client.meta.service_model.service_name == "dynamodb":
            for item in params.get("TransactItems", []):
                calls.update((TRANSACTION_PARTS[kind], part["TableName"])
                             for kind, part in item.items())
            tables = ({params["TableName"]} if "TableName" in params
                      else set(params.get("RequestItems", {})))
            calls.update((operation, table) for table in tables)
        return real(client, operation, params)
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)
    return calls


def test_what_the_api_calls_its_role_allows(prod_template, client, dynamodb_calls):
    create_queue(client, {"_max_claim_count": 1, "_dead_letter_queue": "dead"})
    ids = post_messages(client, [{"body": n, "ttl": 300} for n in range(4)])
    call(client, "GET", "/v2/queues/q/messages?echo=true")
    call(client, "GET", f"/v2/queues/q/messages?ids={','.join(ids[:2])}")
    claim_id, _ = claim(client, {"ttl": 60, "grace": 60}, query="?limit=2")
    call(client, "PATCH", f"/v2/queues/q/claims/{claim_id}", {"ttl": 120})
    call(client, "DELETE", f"/v2/queues/q/messages/{ids[0]}?claim_id={claim_id}")
    call(client, "DELETE", f"/v2/queues/q/claims/{claim_id}")
    claim(client, {"ttl": 60, "grace": 60})  # claimed twice: to the dead letter queue
    call(client, "DELETE", "/v2/queues/q/messages?pop=1")
    call(client, "GET", "/v2/queues/q/stats")
    call(client, "POST", "/v2/queues/q/share", {"paths": ["messages"]})
    subscription = call(client, "POST", "/v2/queues/q/subscriptions",
                        {"subscriber": "http://127.0.0.1:9/hook", "ttl": 600}).json_body
    call(client, "PATCH", f"/v2/queues/q/subscriptions/{subscription['subscription_id']}",
         {"ttl": 900})
    call(client, "GET", "/v2/queues/q/subscriptions")
    call(client, "DELETE", f"/v2/queues/q/subscriptions/{subscription['subscription_id']}")
    call(client, "POST", "/v2/queues/q/purge", {"resource_types": ["messages",
                                                                   "subscriptions"]})
    call(client, "PATCH", "/v2/queues/q", [{"op": "add", "path": "/metadata/k", "value": 1}])
    call(client, "GET", "/v2/queues")
    call(client, "DELETE", "/v2/queues/q")

    tables = {environment_name: logical_id for environment_name, logical_id in (
        (os.environ[variable], logical_id) for variable, logical_id in (
            ("QUEUES_TABLE", "QueuesTable"), ("MESSAGES_TABLE", "MessagesTable"),
            ("SUBSCRIPTIONS_TABLE", "SubscriptionsTable"),
            ("CONNECTIONS_TABLE", "ConnectionsTable")))}
    made = {(action, tables[table]) for action, table in dynamodb_calls}
    allowed = {(action, table) for table, actions in
               table_actions(prod_template, "APIHandler").items() for action in actions}
    assert made - allowed == set()
    # The scenario reached every table the API may use, with most actions.
    assert {table for _, table in made} == set(table_actions(prod_template, "APIHandler"))
    assert len(made) >= 15, sorted(made)
