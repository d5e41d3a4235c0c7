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
    MessageRecord,
    QueueRecord,
    SubscriptionRecord,
)
from local.stage import stage_environment

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_SCRIPT = ROOT / "infra" / "package.py"
BIN = Path(sys.executable).parent
MAX_ZIP_BYTES = 2 * 1024 * 1024
TABLES = {QueueRecord: "QueuesTable", MessageRecord: "MessagesTable",
          SubscriptionRecord: "SubscriptionsTable", ConnectionRecord: "ConnectionsTable"}
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
    assert sorted(props["AttributeDefinitions"], key=str) == sorted(
        ({"AttributeName": key.attr_name, "AttributeType": key.attr_type} for key in keys),
        key=str)
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


def test_policy_names_only_the_stacks_tables(template):
    statements = (template["Resources"]["ApiHandlerRole"]["Properties"]["Policies"][0]
                  ["PolicyDocument"]["Statement"])
    tables = next(statement for statement in statements if statement["Sid"] == "Tables")
    assert {"Fn::Sub": "${MessagesTable.Arn}"} in tables["Resource"]
    assert all("zaqar-" not in json.dumps(statement) for statement in statements)
    # The API handler reads no stream. It may post to websocket connections:
    # Chalice gives the REST handler and the websocket handlers one role.
    assert {statement["Sid"] for statement in statements} == {
        "Logs", "Tables", "Mail", "WebsocketPush"}


def test_zip_is_small_and_holds_the_app(built):
    zip_path = built[0]
    assert zip_path.stat().st_size < MAX_ZIP_BYTES
    names = set(zipfile.ZipFile(zip_path).namelist())
    for schema in (ROOT / "schemas").glob("*.json"):
        assert f"schemas/{schema.name}" in names
    assert "app.py" in names and "chalicelib/validation.py" in names
    assert "pynamodb/models.py" in names
    assert not any(name.startswith(("botocore/", "boto3/")) for name in names)


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
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", PROBE, str(task), str(runtime)],
        env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
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
def notify(event):
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


def event_app_project(directory, app_source=EVENT_APP, filtered_handler="notify",
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


TRUSTEE_PASSWORD = "/zaqar/prod/trustee-password"  # SSM parameters' names
OTHER_SECRET = "/zaqar/prod/other-secret"  # any other function's secret


@pytest.fixture(scope="module")
def event_app_template(tmp_path_factory):
    project = event_app_project(tmp_path_factory.mktemp("events-app"), stage_variables={
        "prod": {"KEYSTONE_TRUSTEE_PASSWORD_PARAMETER": TRUSTEE_PASSWORD,
                 "OTHER_SECRET_PARAMETER": OTHER_SECRET}})
    result = package(project, project / "out", stage="prod")
    assert result.returncode == 0, result.stderr
    return project / "out" / "sam.json"


def test_stream_handler_is_bound_and_bounded(event_app_template):
    resources = json.loads(event_app_template.read_text())["Resources"]
    source = resources["Notify"]["Properties"]["Events"]["NotifyDynamodbEventSource"]
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
    notify = statements("NotifyRole")
    assert notify["MessageStream"]["Resource"] == [{"Fn::Sub": "${MessagesTable.Arn}/stream/*"}]
    assert notify["StreamFailures"]["Action"] == "sqs:SendMessage"
    websocket = statements("WebsocketMessageRole")
    assert "MessageStream" not in websocket and "StreamFailures" not in websocket
    assert websocket["WebsocketPush"]["Resource"] == [{"Fn::Sub": (
        "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
        "${WebsocketAPI}/*/*/@connections/*")}]


def test_event_app_template_passes_cfn_lint(event_app_template):
    result = cfn_lint(event_app_template)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("app_source, filtered_handler, complaint", [
    (EVENT_APP.replace('% os.environ.get("MESSAGES_TABLE")', '% "zaqar-dev-messages"'),
     "notify", "'arn:aws:dynamodb:us-east-1:000000000000:table/zaqar-dev-messages/"
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
    assert unguarded == {("GET", "/")} == {route for route in routes if is_open(*route)}
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
    assert set(statements_of(prod_template, role)) == {"Logs"}
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


def test_functions_get_only_the_names_of_ssm_secrets(event_app_template):
    template = json.loads(event_app_template.read_text())

    def arn(name):
        return {"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:"
                           f"parameter{name}"}
    for function_id, properties in functions(template).items():
        role = properties["Role"]["Fn::GetAtt"][0]
        granted = statements_of(template, role).get("Parameters")
        variables = properties["Environment"]["Variables"]
        assert variables["KEYSTONE_TRUSTEE_PASSWORD_PARAMETER"] == TRUSTEE_PASSWORD
        assert granted["Action"] == "ssm:GetParameter", function_id
        if function_id == "Authorize":
            # Only the trustee's password, to validate trust-scoped tokens.
            assert "OTHER_SECRET_PARAMETER" not in variables
            assert granted["Resource"] == [arn(TRUSTEE_PASSWORD)]
            continue
        assert variables["OTHER_SECRET_PARAMETER"] == OTHER_SECRET
        assert granted["Resource"] == [arn(TRUSTEE_PASSWORD), arn(OTHER_SECRET)], function_id


NOAUTH_STAGE = {"STAGE": "staging", "AUTH_STRATEGY": "noauth"}


@pytest.mark.parametrize("stage, variables, complaint", [
    ("staging", NOAUTH_STAGE,
     "stage 'staging' has AUTH_STRATEGY=noauth: anyone could act for any project"),
    ("prod", {"KEYSTONE_TRUSTEE_PASSWORD": "hunter2"},
     "stage 'prod' has secrets in plain text (KEYSTONE_TRUSTEE_PASSWORD)"),
    ("prod", {"KEYSTONE_URL": 'https://keystone"/v3'}, "is not an http(s) URL"),
    ("prod", {"POLICY": "not json"}, "stage 'prod': POLICY:"),
], ids=["noauth outside dev", "plain password", "bad keystone url", "bad policy"])
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
