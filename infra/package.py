#!/usr/bin/env python
"""Build the Lambda package and the SAM template of one stage.

    python infra/package.py --stage prod [--arch arm64] [--out DIR]
        [--deploy --s3-bucket BUCKET --parameter Name=value ...]

(`make package`, `make deploy`; see infra/README.md). --deploy then runs
`aws cloudformation package` and `deploy` (deploy_commands).

Plain `chalice package` is not enough, for four reasons:

* Size. pynamodb depends on botocore (~16 MB), which the Lambda runtime already
  has. The project is copied to a staging folder whose requirements.txt leaves
  pynamodb out; pynamodb goes into the staged vendor/ without its dependencies.
  schemas/ goes into vendor/ too: Chalice puts vendor/'s contents at the zip
  root, where chalicelib/validation.py looks for it.
* Wiring. `--merge-template` (infra/resources.json) adds the tables and the
  API's gateway responses, but can only add or override keys. Replacing
  literals Chalice wrote (table names, the stream ARN) and configuring the
  stream event sources is done here, on the generated template, for whatever
  functions the app has.
* Operations. Each function's role allows what it does (FUNCTION_ACCESS),
  not one policy for all; the stage's settings become stack parameters;
  logs, traces, alarms and encryption are added; checkov's findings that do
  not apply are skipped with their reasons (CHECKOV_SKIPS). The zip gets
  its bytecode, for the architecture asked for.
* Authentication. The stage's settings are checked (chalicelib.auth) before
  anything is built. A stage that authenticates gets API Gateway's REQUEST
  authorizer (the app's `authorize` function, which Chalice packages as a
  plain function) on every route Zaqar does not leave open, its gateway
  responses, and its Keystone URL as a template parameter unless the stage
  names one; a noauth stage gets no authorizer. Secrets travel by reference:
  a `*_PARAMETER` variable names an SSM parameter its functions may read.
"""
import argparse
import compileall
import copy
import dataclasses
import json
import os
import py_compile
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from chalice.utils import to_cfn_resource_name

PROJECT_DIR = Path(__file__).resolve().parent.parent
MERGE_TEMPLATE = Path(__file__).resolve().parent / "resources.json"

# The service's own rules (which settings are acceptable, which routes are
# open, what the gateway answers), whatever project folder is packaged.
sys.path.insert(0, str(PROJECT_DIR))
from chalicelib import cors, throttle  # noqa: E402
from chalicelib.auth import Misconfigured, check_settings, modes  # noqa: E402
from chalicelib.auth.gateway import gateway_responses, is_open  # noqa: E402
from chalicelib.config import Settings, get_settings  # noqa: E402
from local.stage import stage_environment  # noqa: E402

# Installed into vendor/ without their dependencies (botocore is in the runtime).
VENDOR_WITHOUT_DEPS = ("pynamodb",)

# Environment variable naming a table -> the table's logical id in resources.json.
TABLE_ENV = {
    "QUEUES_TABLE": "QueuesTable",
    "MESSAGES_TABLE": "MessagesTable",
    "SUBSCRIPTIONS_TABLE": "SubscriptionsTable",
    "CONNECTIONS_TABLE": "ConnectionsTable",
    "KEYS_TABLE": "KeysTable",
}

# Stream handlers: a poison record must not block its shard for 24 h (AWS's
# defaults retry forever). Failed batches are split to isolate the bad record,
# retried a few times, then described in an SQS queue for a human to look at.
STREAM_FAILURE_QUEUE = "StreamFailureQueue"
STREAM_EVENT_SETTINGS = {
    "BisectBatchOnFunctionError": True,
    "MaximumRetryAttempts": 5,
    "FunctionResponseTypes": ["ReportBatchItemFailures"],
    "DestinationConfig": {"OnFailure": {
        "Type": "SQS", "Destination": {"Fn::GetAtt": [STREAM_FAILURE_QUEUE, "Arn"]}}},
}
WEBSOCKET_API = "WebsocketAPI"

# Authentication (see fix_template). The app's `authorize` lambda_function:
AUTHORIZER_FUNCTION = to_cfn_resource_name("authorize")
AUTHORIZER = "ZaqarAuthorizer"  # its name in the swagger's securityDefinitions
KEYSTONE_URL_PARAMETER = "KeystoneUrl"
# Stands for the parameter while the settings are checked and the gateway
# responses written; Fn::Sub replaces it in the template.
KEYSTONE_URL_PLACEHOLDER = "${%s}" % KEYSTONE_URL_PARAMETER
# No quotes or blanks: the URL goes into a quoted WWW-Authenticate value,
# itself a single-quoted static value of a gateway response.
KEYSTONE_URL_PATTERN = "^https?://[^\\s'\"]+$"
# A variable named *_PARAMETER holds the name of an SSM parameter (a
# SecureString, say); the functions that have it may read that parameter.
SSM_PARAMETER_SUFFIX = "_PARAMETER"
SSM_PARAMETER_NAME = re.compile(r"^(/[A-Za-z0-9_.-]+)+$|^[A-Za-z0-9_.-]+$")
# A variable named like this holds a secret, which must not be plain text in
# a stage that authenticates: name an SSM parameter (<NAME>_PARAMETER) instead.
SECRET_VARIABLE = re.compile(r"PASSWORD|SECRET")
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch",
                "x-amazon-apigateway-any-method"}

ARN = re.compile(r"^arn:aws:(?P<service>[^:]+):[^:]*:[^:]*:(?P<resource>.+)$")
TABLE_RESOURCE = re.compile(r"^table/(?P<name>[^/]+)(?P<rest>/.*)?$")


class PackagingError(Exception):
    pass


# -- staging ------------------------------------------------------------------

def _requirement_name(line):
    return re.split(r"[\s\[<>=!~;]", line.strip(), maxsplit=1)[0].lower()


def _vendor_pinned(requirement, cache_dir):
    """pip-install one pinned requirement without dependencies, once per pin."""
    if "==" not in requirement:
        raise PackagingError(f"pin {requirement!r} with == in requirements.txt")
    target = cache_dir / re.sub(r"[^A-Za-z0-9_.=-]", "_", requirement)
    if not target.is_dir():
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = tempfile.mkdtemp(dir=cache_dir, prefix=".partial-")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", "--no-deps", "--no-compile",
                        "--target", partial, requirement], check=True)
        try:
            os.rename(partial, target)
        except OSError:  # a concurrent build got there first
            shutil.rmtree(partial)
    return target


def stage_project(project_dir, stage_dir, cache_dir, arch="x86_64"):
    """Copy what the Lambda needs into the empty stage_dir, laid out for
    Chalice, which is to build for Lambda architecture `arch`."""
    (stage_dir / ".chalice").mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copy2(project_dir / "app.py", stage_dir / "app.py")
    for path in (project_dir / ".chalice").glob("*.json"):  # config, IAM policies
        shutil.copy2(path, stage_dir / ".chalice" / path.name)
    config_path = stage_dir / ".chalice" / "config.json"
    config = json.loads(config_path.read_text())
    config["lambda_architecture"] = arch  # its wheels, and the functions' Architectures
    config_path.write_text(json.dumps(config))
    if (project_dir / "chalicelib").is_dir():
        shutil.copytree(project_dir / "chalicelib", stage_dir / "chalicelib", ignore=ignore)

    vendor = stage_dir / "vendor"
    vendor.mkdir()
    if (project_dir / "vendor").is_dir():
        shutil.copytree(project_dir / "vendor", vendor, ignore=ignore, dirs_exist_ok=True)
    if (project_dir / "schemas").is_dir():
        shutil.copytree(project_dir / "schemas", vendor / "schemas")

    requirements = []
    source = project_dir / "requirements.txt"
    for line in (source.read_text().splitlines() if source.exists() else []):
        if _requirement_name(line) in VENDOR_WITHOUT_DEPS:
            shutil.copytree(_vendor_pinned(line.strip(), cache_dir), vendor,
                            ignore=ignore, dirs_exist_ok=True)
        else:
            requirements.append(line)
    (stage_dir / "requirements.txt").write_text("\n".join(requirements) + "\n")


def run_chalice_package(stage_dir, stage, out_dir):
    chalice = (shutil.which("chalice", path=str(Path(sys.executable).parent))
               or shutil.which("chalice"))
    for name in ("deployment.zip", "sam.json"):  # no stale output if this fails
        (out_dir / name).unlink(missing_ok=True)
    environment = dict(os.environ)
    # Chalice needs a region to write ARNs; no credentials are used.
    environment.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    subprocess.run([chalice, "package", "--stage", stage,
                    "--merge-template", str(MERGE_TEMPLATE), str(out_dir)],
                   cwd=stage_dir, env=environment, check=True)


# -- template fixups ----------------------------------------------------------

def _of_type(resources, kind):
    return {name: resource for name, resource in resources.items()
            if resource.get("Type") == kind}


def wire_table_names(resources):
    """Point the functions' table variables at the stack's tables.

    Returns {configured table name: logical id}, used to recognise the
    tables in ARNs Chalice copied from the app and the policy file."""
    names = {}
    for function in _of_type(resources, "AWS::Serverless::Function").values():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        for variable, logical_id in TABLE_ENV.items():
            if isinstance(variables.get(variable), str):
                names[variables[variable]] = logical_id
                variables[variable] = {"Ref": logical_id}
    return names


def function_settings(config, stage, key):
    """{function logical id: value} from the `key` entries of the
    `lambda_functions` sections of .chalice/config.json (Chalice ignores such
    keys; the stage's section wins over the top-level one). Keys read here:
    `stream_filters` (event patterns) and `stream_batching_window` (seconds a
    stream handler's batch may wait to fill: fewer, fuller invocations)."""
    found = {}
    for section in (config, config.get("stages", {}).get(stage, {})):
        for name, settings in section.get("lambda_functions", {}).items():
            if key in settings:
                found[to_cfn_resource_name(name)] = settings[key]
    return found


def configure_stream_sources(resources, table_names, filters, windows=None):
    """Bind each DynamoDB event source to the stack's table stream and set what
    Chalice cannot. Returns the logical ids of the stream handlers' roles."""
    windows = windows or {}
    stream_roles = set()
    unused_filters = set(filters) | set(windows)
    for function_id, function in _of_type(resources, "AWS::Serverless::Function").items():
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] != "DynamoDB":
                continue
            arn = ARN.match(event["Properties"]["Stream"])
            table = TABLE_RESOURCE.match(arn["resource"]) if arn else None
            if not table or table["name"] not in table_names:
                raise PackagingError(
                    f"stream {event['Properties']['Stream']!r} is not the stream of a "
                    f"table of this stage ({sorted(table_names)})")
            event["Properties"]["Stream"] = {
                "Fn::GetAtt": [table_names[table["name"]], "StreamArn"]}
            event["Properties"].update(copy.deepcopy(STREAM_EVENT_SETTINGS))
            unused_filters.discard(function_id)
            if function_id in filters:
                event["Properties"]["FilterCriteria"] = {"Filters": [
                    {"Pattern": json.dumps(pattern)} for pattern in filters[function_id]]}
            if function_id in windows:
                event["Properties"]["MaximumBatchingWindowInSeconds"] = windows[function_id]
            stream_roles.add(function["Properties"]["Role"]["Fn::GetAtt"][0])
    if unused_filters:
        raise PackagingError(f"stream settings for {sorted(unused_filters)}, "
                             "which have no DynamoDB stream handler")
    if stream_roles:
        resources[STREAM_FAILURE_QUEUE] = {
            "Type": "AWS::SQS::Queue",
            "Properties": {"MessageRetentionPeriod": 1209600,
                           "SqsManagedSseEnabled": True}}
    return stream_roles


# -- authentication -------------------------------------------------------------

def stage_settings(stage, project_dir=PROJECT_DIR):
    """The stage's Settings, from its variables, checked as the service checks
    them at start (chalicelib.auth.check_settings); PackagingError if no
    request could be served with them, or if they hold a secret in plain text.

    A stage that authenticates and names no KEYSTONE_URL gets it from the
    template's KeystoneUrl parameter: its settings then carry the placeholder
    KEYSTONE_URL_PLACEHOLDER."""
    try:
        environment = stage_environment(stage, project_dir)
    except KeyError:
        raise PackagingError(f"no stage {stage!r} in .chalice/config.json") from None
    try:
        settings = get_settings(environment)
        if "keystone" in modes(settings) and not settings.keystone_url:
            settings = dataclasses.replace(settings, keystone_url=KEYSTONE_URL_PLACEHOLDER)
        check_settings(settings)
    except (Misconfigured, ValueError) as error:
        message = str(error)
        raise PackagingError(message if message.startswith(f"stage {stage!r}")
                             else f"stage {stage!r}: {message}") from None
    if (settings.keystone_url != KEYSTONE_URL_PLACEHOLDER and settings.keystone_url
            and not re.match(KEYSTONE_URL_PATTERN, settings.keystone_url)):
        raise PackagingError(f"stage {stage!r}: KEYSTONE_URL {settings.keystone_url!r} "
                             "is not an http(s) URL without quotes or blanks")
    if settings.auth_strategy != "noauth":
        plain = sorted(name for name in environment if SECRET_VARIABLE.search(name)
                       and not name.endswith(SSM_PARAMETER_SUFFIX))
        if plain:
            raise PackagingError(
                f"stage {stage!r} has secrets in plain text ({', '.join(plain)}): put each "
                f"in SSM Parameter Store and name it in <NAME>{SSM_PARAMETER_SUFFIX} instead")
    return settings


def _functions(resources):
    return _of_type(resources, "AWS::Serverless::Function")


def _variables(function):
    return function["Properties"].get("Environment", {}).get("Variables", {})


def _role_of(function):
    role = function["Properties"].get("Role")
    return role["Fn::GetAtt"][0] if isinstance(role, dict) and "Fn::GetAtt" in role else None


def wire_keystone_url(template):
    """KEYSTONE_URL becomes the KeystoneUrl parameter: given at deploy time
    (`--parameter-overrides KeystoneUrl=...`), never written in the template."""
    template.setdefault("Parameters", {})[KEYSTONE_URL_PARAMETER] = {
        "Type": "String",
        "Description": "The Keystone identity v3 endpoint tokens are validated against, "
                       "e.g. https://keystone.example.com:5000/v3",
        "AllowedPattern": KEYSTONE_URL_PATTERN,
        "ConstraintDescription": "an http(s) URL without quotes or blanks"}
    for function in _functions(template["Resources"]).values():
        function["Properties"].setdefault("Environment", {}).setdefault(
            "Variables", {})["KEYSTONE_URL"] = {"Ref": KEYSTONE_URL_PARAMETER}


def drop_authorizer(resources):
    """A noauth stage calls no authorizer: the function (and its role) would
    be deployed for nothing."""
    function = resources.pop(AUTHORIZER_FUNCTION, None)
    if function is not None and _role_of(function):
        resources.pop(_role_of(function))


def _static_header(value):
    """A gateway response's header value: a single-quoted static string,
    through Fn::Sub when it holds the Keystone URL parameter."""
    if "'" in value:
        raise PackagingError(f"gateway response header value {value!r} has a quote")
    if KEYSTONE_URL_PLACEHOLDER not in value:
        return f"'{value}'"
    escaped = value.replace("${", "${!").replace("${!" + KEYSTONE_URL_PARAMETER + "}",
                                                 KEYSTONE_URL_PLACEHOLDER)
    return {"Fn::Sub": f"'{escaped}'"}


def attach_authorizer(resources, settings):
    """Put the app's `authorize` function in front of every route Zaqar does
    not leave open (chalicelib.auth.gateway.is_open), as a REQUEST authorizer,
    and answer its refusals and failures in Zaqar's error shape."""
    if AUTHORIZER_FUNCTION not in resources:
        raise PackagingError(
            f"stage {settings.stage or '(unnamed)'!r} authenticates "
            f"(AUTH_STRATEGY={settings.auth_strategy}), but the app has no "
            "`authorize` lambda_function to authorize its requests with")
    if "RestAPI" not in resources:
        return
    swagger = resources["RestAPI"]["Properties"]["DefinitionBody"]
    swagger.setdefault("securityDefinitions", {})[AUTHORIZER] = {
        # Swagger wants a name and a place for an apiKey scheme; API Gateway
        # reads only the authorizer block below.
        "type": "apiKey", "name": "Unused", "in": "header",
        "x-amazon-apigateway-authtype": "custom",
        "x-amazon-apigateway-authorizer": {
            # REQUEST, not TOKEN, uncached and with no identitySource: Zaqar's
            # signed URLs carry no token, and API Gateway answers 401 without
            # calling the authorizer when an identity source is missing. A
            # cached authorizer needs an identity source present on every
            # request (its cache key), so caching is off; the authorizer's
            # own cache keeps Keystone out of warm calls.
            "type": "request",
            "authorizerUri": {"Fn::Sub": (
                "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/"
                f"functions/${{{AUTHORIZER_FUNCTION}.Arn}}/invocations")},
            "authorizerResultTtlInSeconds": 0,
        },
    }
    for path, operations in swagger.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in HTTP_METHODS:
                continue
            verb = "ANY" if method.startswith("x-") else method.upper()
            if not is_open(verb, path):
                operation["security"] = [{AUTHORIZER: []}]
    responses = swagger.setdefault("x-amazon-apigateway-gateway-responses", {})
    for kind, (status, headers, body) in gateway_responses(settings).items():
        parameters = {"gatewayresponse.header.Content-Type": "'application/json'"}
        parameters.update({f"gatewayresponse.header.{name}": _static_header(value)
                           for name, value in headers.items()})
        responses[kind] = {"statusCode": str(status), "responseParameters": parameters,
                           "responseTemplates": {"application/json": json.dumps(body)}}
    resources[f"{AUTHORIZER_FUNCTION}InvokePermission"] = {
        "Type": "AWS::Lambda::Permission",
        "Properties": {
            "FunctionName": {"Ref": AUTHORIZER_FUNCTION},
            "Action": "lambda:InvokeFunction",
            "Principal": "apigateway.amazonaws.com",
            # This API's authorizers only, not its methods or another API.
            "SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:"
                                     "${AWS::AccountId}:${RestAPI}/authorizers/*"}}}


# The fallbacks of every gateway answer the template does not set itself
# (ACCESS_DENIED, QUOTA_EXCEEDED, INTEGRATION_TIMEOUT...): with them each one
# carries the CORS headers.
GATEWAY_FALLBACKS = ("DEFAULT_4XX", "DEFAULT_5XX")
PARAMETER_ORIGIN = "(the first origin of the stack parameter)"


def wire_cors_and_throttling(resources, settings):
    """CORS headers on the gateway's own answers and the stage's throttling,
    which Chalice cannot write. A gateway answer cannot echo the request's
    Origin: it names the first allowed origin (chalicelib.cors), taken from
    the functions' CORS_ALLOWED_ORIGINS, a stack parameter's Ref or the
    stage's text. THROTTLED is API Gateway's 429 for the whole stage
    (api_rate_limit); the app answers each project's own (chalicelib.throttle)."""
    api = resources.get("RestAPI")
    if api is None:
        return
    origins = next((_variables(function).get("CORS_ALLOWED_ORIGINS")
                    for function in _functions(resources).values()
                    if "CORS_ALLOWED_ORIGINS" in _variables(function)),
                   settings.cors_allowed_origins)
    first = cors.first_origin(origins) if isinstance(origins, str) else PARAMETER_ORIGIN
    headers = {} if first is None else {
        name: _static_header(value)
        for name, value in cors.gateway_headers(first, settings.cors_allow_credentials).items()}
    if first == PARAMETER_ORIGIN:  # the first of the parameter's list, quoted
        headers["Access-Control-Allow-Origin"] = {"Fn::Join": ["", [
            "'", {"Fn::Select": [0, {"Fn::Split": [",", origins]}]}, "'"]]}
    responses = api["Properties"]["DefinitionBody"].setdefault(
        "x-amazon-apigateway-gateway-responses", {})
    responses.setdefault("THROTTLED", {
        "statusCode": "429",
        "responseParameters": {"gatewayresponse.header.Content-Type": "'application/json'",
                               "gatewayresponse.header.Retry-After": "'1'"},
        "responseTemplates": {"application/json": json.dumps(throttle.GATEWAY_THROTTLED_BODY)}})
    if headers:
        for kind in GATEWAY_FALLBACKS:
            responses.setdefault(kind, {})
        for response in responses.values():
            response.setdefault("responseParameters", {}).update(
                {f"gatewayresponse.header.{name}": value for name, value in headers.items()})
    if settings.api_rate_limit:
        api["Properties"]["MethodSettings"] = [{
            "ResourcePath": "/*", "HttpMethod": "*",
            "ThrottlingRateLimit": settings.api_rate_limit,
            "ThrottlingBurstLimit": settings.api_burst_limit or settings.api_rate_limit}]



# -- least privilege ------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Access:
    """What one function may do besides writing its own logs.

    tables: {table's logical id: the DynamoDB actions it calls on it} (a
    transaction needs the action of each of its parts). mail: "always",
    "never", or "confirmations" (only when the stage sets
    REQUIRE_CONFIRMATION: confirmation requests are sent from the API call
    that subscribes). push: execute-api:ManageConnections on the stack's
    websocket API. parameters: the *_PARAMETER variables (SSM secrets) it
    reads. Stream reading comes with a stream event source."""
    tables: dict
    mail: str = "never"
    push: bool = False
    parameters: frozenset = frozenset()


# Read from the code, and checked against the calls each entry point made
# while the unit tests ran under moto (a botocore hook, per entry point). A
# table's indexes (the keys table's, by project) come with its Query.
# A transaction needs the action of each of its parts (Put, Update, Delete).
_GET, _BATCH_GET, _QUERY, _SCAN = "GetItem", "BatchGetItem", "Query", "Scan"
_PUT, _UPDATE, _DELETE, _BATCH_WRITE = "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"
# The trustee's password: trust+ deliveries, making and checking trusts, and
# validating trust-scoped tokens. The signed URL key: signing and checking.
_TRUSTEE, _SIGNING = "KEYSTONE_TRUSTEE_PASSWORD_PARAMETER", "SIGNED_URL_SECRET_KEY_PARAMETER"
# API keys: checking one (its HMAC, and its last use marked) wherever a
# credential is checked; issuing, listing and revoking by the admin routes.
_KEY_HMAC = "API_KEY_SECRET_PARAMETER"
_KEYS_CHECKED = {"KeysTable": (_GET, _UPDATE)}
# Tables only a stage with that auth mode uses: no role names them otherwise.
TABLE_MODES = {"KeysTable": {"apikey"}}
# Zaqar's actions, over REST or a websocket: everything but Scan.
_ACTIONS_TABLES = {
    "QueuesTable": (_GET, _QUERY, _PUT, _UPDATE, _DELETE),
    "MessagesTable": (_GET, _BATCH_GET, _QUERY, _PUT, _UPDATE, _DELETE, _BATCH_WRITE),
    "SubscriptionsTable": (_GET, _QUERY, _PUT, _UPDATE, _DELETE, _BATCH_WRITE)}
# Deliveries: live subscriptions, failures and pending retries; a websocket
# subscriber gone is forgotten with the subscriptions it made.
_DELIVERY_TABLES = {"SubscriptionsTable": (_GET, _QUERY, _PUT, _UPDATE, _DELETE),
                    "ConnectionsTable": (_GET, _DELETE)}
FUNCTION_ACCESS = {
    "APIHandler": Access({**_ACTIONS_TABLES, "KeysTable": (_GET, _QUERY, _PUT, _UPDATE)},
                         mail="confirmations",
                         parameters=frozenset({_TRUSTEE, _SIGNING, _KEY_HMAC})),
    "Authorize": Access(_KEYS_CHECKED, parameters=frozenset({_TRUSTEE, _KEY_HMAC})),
    # The one Scan: the queues, to find expired messages and leftovers.
    "Sweep": Access({"QueuesTable": (_GET, _SCAN),
                     "MessagesTable": (_GET, _QUERY, _PUT, _UPDATE, _DELETE, _BATCH_WRITE)}),
    "CountMessages": Access({"QueuesTable": (_GET,), "MessagesTable": (_GET, _UPDATE)}),
    "NotifySubscribers": Access({"QueuesTable": (_GET,), **_DELIVERY_TABLES}, mail="always",
                                push=True, parameters=frozenset({_TRUSTEE})),
    "RetryNotifications": Access(_DELIVERY_TABLES, mail="always", push=True,
                                 parameters=frozenset({_TRUSTEE})),
    "WebsocketConnect": Access({"ConnectionsTable": (_PUT,)}),
    "WebsocketMessage": Access({**_ACTIONS_TABLES, **_KEYS_CHECKED,
                                "ConnectionsTable": (_GET, _UPDATE, _DELETE)},
                               mail="confirmations", push=True,
                               parameters=frozenset({_TRUSTEE, _SIGNING, _KEY_HMAC})),
    "WebsocketDisconnect": Access({"SubscriptionsTable": (_GET, _DELETE),
                                   "ConnectionsTable": (_GET, _DELETE)}),
}
STREAM_READ_ACTIONS = ["dynamodb:DescribeStream", "dynamodb:GetRecords",
                       "dynamodb:GetShardIterator", "dynamodb:ListStreams"]
XRAY_ACTIONS = ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]  # resource "*" only


def _ssm_arn(name):
    """The ARN of the SSM parameter a variable names: a literal name, or a
    Ref to a stack parameter holding one (which starts with a slash)."""
    if isinstance(name, dict) and set(name) == {"Ref"}:
        return {"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:"
                           f"parameter${{{name['Ref']}}}"}
    if not isinstance(name, str) or not SSM_PARAMETER_NAME.match(name):
        raise PackagingError(f"{name!r} is not the name of an SSM parameter")
    return {"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:"
                       f"parameter/{name.lstrip('/')}"}


def _mail_identities(sender, settings):
    """The SES identities mail may be sent from: the From address (a literal
    or a Ref) and its domain (SES authorises a send against whichever of the
    two is the verified identity)."""
    region = settings.ses_region or "${AWS::Region}"
    arn = f"arn:${{AWS::Partition}}:ses:{region}:${{AWS::AccountId}}:identity/${{Identity}}"
    domain = {"Fn::Select": [1, {"Fn::Split": ["@", sender]}]}
    return [{"Fn::Sub": [arn, {"Identity": sender}]},
            {"Fn::Sub": [arn, {"Identity": domain}]}]


def _readable_parameters(function_id, function, readable):
    """Drop the function's *_PARAMETER variables not in `readable`; the ARNs
    of the SSM parameters the others name."""
    variables, arns = _variables(function), []
    for variable in [name for name in variables if name.endswith(SSM_PARAMETER_SUFFIX)]:
        if variable not in readable:
            del variables[variable]
            continue
        try:
            arn = _ssm_arn(variables[variable])
        except PackagingError as error:
            raise PackagingError(f"{variable} of {function_id}: {error}") from None
        if arn not in arns:
            arns.append(arn)
    return arns


def _pool_tables(settings):
    """The tables pools may name on a pooling stage: known only at run time,
    so granted by name, `<stage's prefix>-pool-*`, in any region of the
    account (a pool in another region, docs/operations.md)."""
    prefix = settings.messages_table.removesuffix("-messages")
    return {"Fn::Sub": "arn:${AWS::Partition}:dynamodb:*:${AWS::AccountId}:"
                       f"table/{prefix}-pool-*"}


def write_policies(resources, settings, stream_roles, access=FUNCTION_ACCESS):
    """Give each function's role exactly what FUNCTION_ACCESS says it does
    (Chalice gives every role a copy of .chalice/policy.json), drop the
    *_PARAMETER variables a function may not read, and grant the ones left
    (ssm:GetParameter on exactly those parameters). No kms:Decrypt: the
    default key, aws/ssm, lets the account's principals decrypt through SSM;
    a parameter under a customer managed key needs it on that key."""
    functions = _functions(resources)
    missing = sorted(set(functions) - set(access))
    if missing:
        raise PackagingError(f"no FUNCTION_ACCESS entry for {missing}: say what each "
                             "may do in infra/package.py")
    unread = sorted({variable for function in functions.values()
                     for variable in _variables(function)
                     if variable.endswith(SSM_PARAMETER_SUFFIX)}
                    - {variable for function_id in functions
                       for variable in access[function_id].parameters})
    if unread:
        raise PackagingError(f"no function reads {', '.join(unread)}: list it in the "
                             "parameters of those that do (FUNCTION_ACCESS)")
    for function_id, function in functions.items():
        allowed, role_id = access[function_id], _role_of(function)
        sharing = sorted(other_id for other_id, other in functions.items()
                         if other_id != function_id and _role_of(other) == role_id)
        if role_id is None or sharing:
            raise PackagingError(f"{function_id} must have a role of its own, not "
                                 f"{role_id or 'a given one'} (shared with {sharing})")
        statements = [{"Sid": "Logs", "Effect": "Allow",
                       "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                       "Resource": {"Fn::GetAtt": [f"{function_id}LogGroup", "Arn"]}}]
        for table, actions in allowed.tables.items():
            if TABLE_MODES.get(table, set()) - modes(settings):
                continue  # the stage never uses it
            if table not in resources:
                raise PackagingError(f"{function_id} may use {table}, which this stack "
                                     "does not have")
            arns = [{"Fn::GetAtt": [table, "Arn"]}]
            if resources[table]["Properties"].get("GlobalSecondaryIndexes") and _QUERY in actions:
                arns.append({"Fn::Sub": f"${{{table}.Arn}}/index/*"})  # its queries
            statements.append({"Sid": table, "Effect": "Allow",
                               "Action": [f"dynamodb:{action}" for action in actions],
                               "Resource": arns[0] if len(arns) == 1 else arns})
            if table == "MessagesTable" and settings.pooling:
                statements.append({"Sid": "PoolTables", "Effect": "Allow", "Action": [
                    f"dynamodb:{action}" for action in (*actions, "DescribeTable")],
                    "Resource": _pool_tables(settings)})
        if role_id in stream_roles:
            stream = {"Fn::Sub": "${MessagesTable.Arn}/stream/*"}
            pool_streams = {"Fn::Sub": _pool_tables(settings)["Fn::Sub"] + "/stream/*"}
            statements += [
                {"Sid": "MessageStream", "Effect": "Allow", "Action": STREAM_READ_ACTIONS,
                 "Resource": [stream, pool_streams] if settings.pooling else stream},
                {"Sid": "StreamFailures", "Effect": "Allow", "Action": "sqs:SendMessage",
                 "Resource": {"Fn::GetAtt": [STREAM_FAILURE_QUEUE, "Arn"]}}]
        sender = _variables(function).get("SES_FROM_ADDRESS")  # none: no mail is sent
        if sender and (allowed.mail == "always" or (allowed.mail == "confirmations"
                                                    and settings.require_confirmation)):
            statements.append({"Sid": "Mail", "Effect": "Allow",
                               "Action": ["ses:SendEmail", "ses:SendRawEmail"],
                               "Resource": _mail_identities(sender, settings)})
        if allowed.push and WEBSOCKET_API in resources:
            statements.append({
                "Sid": "WebsocketPush", "Effect": "Allow",
                "Action": "execute-api:ManageConnections",
                "Resource": {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:"
                                        f"${{AWS::AccountId}}:${{{WEBSOCKET_API}}}/*/*/"
                                        "@connections/*"}})
        arns = _readable_parameters(function_id, function, allowed.parameters)
        if arns:
            statements.append({"Sid": "Parameters", "Effect": "Allow",
                               "Action": "ssm:GetParameter", "Resource": arns})
        if function["Properties"].get("Tracing") == "Active":
            statements.append({"Sid": "Traces", "Effect": "Allow", "Action": XRAY_ACTIONS,
                               "Resource": "*"})
        resources[role_id]["Properties"]["Policies"] = [{
            "PolicyName": f"{function_id}Policy",
            "PolicyDocument": {"Version": "2012-10-17", "Statement": statements}}]


# -- stack parameters -------------------------------------------------------------

# Given at deploy time (`--parameter-overrides Name=value`), each sets one
# variable of every function. A STACK_PARAMETERS entry becomes a parameter
# only when the stage does not set its variable (nor, for a secret's SSM
# name, the secret itself, as dev does): the stage's own value wins. The
# limits are always parameters, their defaults the stage's values.
SSM_NAME_PATTERN = "^(/[A-Za-z0-9_.-]+)+$"
SES_FROM_PARAMETER = "SesFromAddress"
STACK_PARAMETERS = {
    SES_FROM_PARAMETER: ("SES_FROM_ADDRESS", {
        "Type": "String", "AllowedPattern": "^[^@\\s]+@[^@\\s]+$",
        "ConstraintDescription": "an email address",
        "Description": "The From of mail (a verified SES identity, or an address of a "
                       "verified domain); functions may send from it only"}),
    "CorsAllowedOrigins": ("CORS_ALLOWED_ORIGINS", {
        "Type": "String", "Default": "",
        "Description": "Origins browsers may call the API from, comma-separated "
                       "(https://app.example.com); empty: none"}),
    "SignedUrlSecretKeyParameter": ("SIGNED_URL_SECRET_KEY_PARAMETER", {
        "Type": "String", "AllowedPattern": SSM_NAME_PATTERN,
        "Default": "/zaqar/{stage}/signed-url-secret-key",
        "Description": "The SSM SecureString holding the HMAC key of signed URLs "
                       "(shares, subscription confirmations)"}),
}
LIMIT_PARAMETERS = {
    "MaxMessagesPostSize": "MAX_MESSAGES_POST_SIZE",
    "MaxMessagesPerPost": "MAX_MESSAGES_PER_POST",
    "MaxQueueMetadata": "MAX_QUEUE_METADATA",
    "DefaultMessageTtl": "DEFAULT_MESSAGE_TTL",
    "MaxMessageTtl": "MAX_MESSAGE_TTL",
    "MaxClaimTtl": "MAX_CLAIM_TTL",
}
# The secret a *_PARAMETER variable stands for, when given plainly. (Trust+
# subscribers are optional: a stage that has them names its trustee and the
# password's parameter in its variables.)
_PLAIN_SECRET = {"SIGNED_URL_SECRET_KEY_PARAMETER": "SIGNED_URL_SECRET_KEY"}


def wire_stack_parameters(template, environment, stage):
    """Add the stack parameters this stage leaves open, and point every
    function's variable at its parameter."""
    parameters = template.setdefault("Parameters", {})
    wired = {}
    for name, (variable, definition) in STACK_PARAMETERS.items():
        if variable in environment or _PLAIN_SECRET.get(variable, variable) in environment:
            continue
        parameters[name] = dict(definition)
        if "Default" in definition:
            parameters[name]["Default"] = definition["Default"].format(stage=stage)
        wired[variable] = name
    defaults = {field.name.upper(): field.default for field in dataclasses.fields(Settings)}
    for name, variable in LIMIT_PARAMETERS.items():
        parameters[name] = {"Type": "Number", "MinValue": 1,
                            "Default": str(environment.get(variable, defaults[variable])),
                            "Description": f"{variable} of every function"}
        wired[variable] = name
    for function in _functions(template["Resources"]).values():
        variables = function["Properties"].setdefault("Environment", {}).setdefault(
            "Variables", {})
        variables.update({variable: {"Ref": name} for variable, name in wired.items()})


# -- operations: logs, traces, alarms, encryption, checkov's findings ----------

LOG_RETENTION_PARAMETER = "LogRetentionDays"
LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096,
                      1827, 2192, 2557, 2922, 3288, 3653]  # what CloudWatch Logs accepts
ALARM_TOPIC = "AlarmTopic"
ALARM_EMAIL_PARAMETER = "AlarmEmail"
REST_ACCESS_LOGS, WEBSOCKET_ACCESS_LOGS = "RestApiAccessLogs", "WebsocketApiAccessLogs"
APIGATEWAY_LOGS_ROLE, APIGATEWAY_ACCOUNT = "ApiGatewayLogsRole", "ApiGatewayAccount"
# One JSON line per request; requestId is the id API Gateway hands the function.
REST_ACCESS_FORMAT = json.dumps({
    "requestId": "$context.requestId", "extendedRequestId": "$context.extendedRequestId",
    "ip": "$context.identity.sourceIp", "method": "$context.httpMethod",
    "path": "$context.path", "status": "$context.status",
    "latencyMs": "$context.responseLatency", "integrationMs": "$context.integration.latency",
    "authorizerError": "$context.authorizer.error", "error": "$context.error.message"})
WEBSOCKET_ACCESS_FORMAT = json.dumps({
    "requestId": "$context.requestId", "connectionId": "$context.connectionId",
    "eventType": "$context.eventType", "routeKey": "$context.routeKey",
    "ip": "$context.identity.sourceIp", "status": "$context.status",
    "integrationMs": "$context.integrationLatency", "error": "$context.error.message"})
TABLE_ENCRYPTION = {"SSEEnabled": True, "SSEType": "KMS",
                    # The AWS managed key: encrypted at rest with a KMS key,
                    # with no key policy to keep and no kms:* grant needed.
                    "KMSMasterKeyId": "alias/aws/dynamodb"}

# checkov's findings that do not apply, by resource type and, for functions,
# by how they are invoked; each skip carries its reason into the template.
_NO_VPC = ("No VPC: the functions call only AWS APIs, Keystone and webhooks on the "
           "internet; a VPC would add NAT gateways and cold-start time, isolating nothing")
_NO_ENV_KMS = ("The environment holds table names, limits and SSM parameter names, no "
               "secret: secrets are SSM SecureStrings read at run time")
CHECKOV_SKIPS = {
    "function": {"CKV_AWS_117": _NO_VPC, "CKV_AWS_173": _NO_ENV_KMS},
    "synchronous": {
        "CKV_AWS_116": "Invoked synchronously by API Gateway: a DLQ only ever receives "
                       "failed asynchronous invocations",
        "CKV_AWS_115": "Serves the APIs from the account's unreserved pool, bounded by the "
                       "stages' throttling; a reservation would cap the API below it"},
    "stream": {
        "CKV_AWS_116": "Its stream event source sends failed batches to StreamFailureQueue "
                       "(alarmed on); a function DLQ would never be used",
        "CKV_AWS_115": "One concurrent batch per stream shard at most: the table's shards "
                       "bound it, a reservation below them would let the stream lag"},
    "schedule": {
        "CKV_AWS_116": "A scheduled run carries no data: the next minute's run redoes what "
                       "a failed one left (its errors are alarmed on)"},
    "AWS::Logs::LogGroup": {
        "CKV_AWS_158": "Encrypted by CloudWatch Logs' own keys; the lines hold ids and "
                       "statuses, no message bodies or secrets"},
    "AWS::Serverless::Api": {
        "CKV_AWS_120": "Answers are per project and change with every post and claim: a "
                       "cache would serve stale queues"},
    "AWS::SQS::Queue": {
        "CKV_AWS_27": "Encrypted with SQS-managed keys (SqsManagedSseEnabled), which this "
                      "check does not recognise"},
    "AWS::SNS::Topic": {
        "CKV_AWS_26": "CloudWatch alarms cannot publish to a topic under the AWS managed "
                      "key aws/sns; alarm notifications hold no data"},
}


def _invocation(function):
    kinds = {event["Type"] for event in function["Properties"].get("Events", {}).values()}
    if "DynamoDB" in kinds:
        return "stream"
    return "schedule" if kinds & {"Schedule", "CloudWatchEvent"} else "synchronous"


def add_log_groups(template):
    """A log group per function and per API, kept LogRetentionDays; each
    function writes only to its own (LoggingConfig), so its role names it
    exactly. API Gateway writes access logs through the account's CloudWatch
    role, set here (one per account and region; retained with the stack
    gone, as other APIs of the account may rely on it)."""
    resources = template["Resources"]
    template.setdefault("Parameters", {})[LOG_RETENTION_PARAMETER] = {
        "Type": "Number", "Default": 30, "AllowedValues": LOG_RETENTION_DAYS,
        "Description": "Days the functions' logs and the APIs' access logs are kept"}

    def log_group(name):
        return {"Type": "AWS::Logs::LogGroup", "Properties": {
            "LogGroupName": {"Fn::Sub": f"/aws/{name}"},
            "RetentionInDays": {"Ref": LOG_RETENTION_PARAMETER}}}
    for function_id, function in _functions(resources).items():
        resources[f"{function_id}LogGroup"] = log_group(f"lambda/${{AWS::StackName}}-{function_id}")
        function["Properties"]["LoggingConfig"] = {"LogGroup": {"Ref": f"{function_id}LogGroup"}}
    if "RestAPI" not in resources and WEBSOCKET_API not in resources:
        return
    resources[APIGATEWAY_LOGS_ROLE] = {
        "Type": "AWS::IAM::Role", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
        "Properties": {
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"},
                "Action": "sts:AssumeRole"}]},
            "ManagedPolicyArns": [{"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/"
                                              "service-role/AmazonAPIGatewayPushToCloudWatchLogs"}]}}
    resources[APIGATEWAY_ACCOUNT] = {
        "Type": "AWS::ApiGateway::Account",
        "Properties": {"CloudWatchRoleArn": {"Fn::GetAtt": [APIGATEWAY_LOGS_ROLE, "Arn"]}}}

    def destination(logs):
        return {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:"
                           f"log-group:${{{logs}}}"}
    if "RestAPI" in resources:
        resources[REST_ACCESS_LOGS] = log_group("apigateway/${AWS::StackName}-rest-access")
        api = resources["RestAPI"]
        api["DependsOn"] = APIGATEWAY_ACCOUNT
        api["Properties"]["AccessLogSetting"] = {"DestinationArn": destination(REST_ACCESS_LOGS),
                                                 "Format": REST_ACCESS_FORMAT}
    if WEBSOCKET_API in resources:
        resources[WEBSOCKET_ACCESS_LOGS] = log_group(
            "apigateway/${AWS::StackName}-websocket-access")
        stage = resources[f"{WEBSOCKET_API}Stage"]
        stage["DependsOn"] = APIGATEWAY_ACCOUNT
        stage["Properties"]["AccessLogSettings"] = {
            "DestinationArn": destination(WEBSOCKET_ACCESS_LOGS),
            "Format": WEBSOCKET_ACCESS_FORMAT}


def trace_rest_api(resources):
    """The REST stage traces when the functions do (the stage's `xray` key
    in .chalice/config.json, which Chalice applies to the functions)."""
    if "RestAPI" in resources:
        resources["RestAPI"]["Properties"]["TracingEnabled"] = any(
            function["Properties"].get("Tracing") == "Active"
            for function in _functions(resources).values())


def harden_tables(resources, deletion_protection):
    for table in _of_type(resources, "AWS::DynamoDB::Table").values():
        table["Properties"]["SSESpecification"] = dict(TABLE_ENCRYPTION)
        table["Properties"]["DeletionProtectionEnabled"] = deletion_protection


def _alarm(description, metric, threshold, period=300, periods=1, statistic="Sum",
           namespace="AWS/Lambda", comparison="GreaterThanOrEqualToThreshold"):
    [(dimension, value)] = metric[1].items()
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": {
        "AlarmDescription": description,
        "Namespace": namespace, "MetricName": metric[0],
        "Dimensions": [{"Name": dimension, "Value": value}],
        "Statistic": statistic, "Period": period, "EvaluationPeriods": periods,
        "DatapointsToAlarm": periods, "Threshold": threshold,
        "ComparisonOperator": comparison, "TreatMissingData": "notBreaching",
        "AlarmActions": [{"Ref": ALARM_TOPIC}], "OKActions": [{"Ref": ALARM_TOPIC}]}}


# Thresholds. A function error is an unhandled exception or a timeout (the app
# answers backend failures itself, with a 503): every one is worth a look.
# DynamoDB retries throttled calls and the app retries again, so only a
# sustained run of throttling is. A stream handler more than a minute behind
# for five minutes delays notifications or stats visibly. A record in the
# failure queue is a batch given up on: always looked at.
THROTTLES_PER_5_MINUTES = 50
ITERATOR_AGE_MS = 60_000


def add_alarms(template):
    """Alarms on what needs a human, sent to the AlarmTopic SNS topic (which
    AlarmEmail, when given, subscribes to)."""
    resources = template["Resources"]
    template.setdefault("Parameters", {})[ALARM_EMAIL_PARAMETER] = {
        "Type": "String", "Default": "",
        "Description": "An address the alarms are mailed to (it confirms the "
                       "subscription first); empty: subscribe to AlarmTopic yourself"}
    template.setdefault("Conditions", {})["HasAlarmEmail"] = {
        "Fn::Not": [{"Fn::Equals": [{"Ref": ALARM_EMAIL_PARAMETER}, ""]}]}
    resources[ALARM_TOPIC] = {"Type": "AWS::SNS::Topic", "Properties": {}}
    resources[f"{ALARM_TOPIC}Email"] = {
        "Type": "AWS::SNS::Subscription", "Condition": "HasAlarmEmail",
        "Properties": {"TopicArn": {"Ref": ALARM_TOPIC}, "Protocol": "email",
                       "Endpoint": {"Ref": ALARM_EMAIL_PARAMETER}}}
    for function_id, function in _functions(resources).items():
        resources[f"{function_id}ErrorsAlarm"] = _alarm(
            f"{function_id} failed (an exception or a timeout) at least once in 5 minutes",
            ("Errors", {"FunctionName": {"Ref": function_id}}), 1)
        if _invocation(function) == "stream":
            resources[f"{function_id}IteratorAgeAlarm"] = _alarm(
                f"{function_id} is more than a minute behind its stream, for 5 minutes",
                ("IteratorAge", {"FunctionName": {"Ref": function_id}}), ITERATOR_AGE_MS,
                period=60, periods=5, statistic="Maximum",
                comparison="GreaterThanThreshold")
    for table_id in _of_type(resources, "AWS::DynamoDB::Table"):
        for kind in ("Read", "Write"):
            resources[f"{table_id}{kind}ThrottlesAlarm"] = _alarm(
                f"{table_id}: {THROTTLES_PER_5_MINUTES}+ {kind.lower()} throttle events in "
                "each of two 5-minute periods", (f"{kind}ThrottleEvents",
                                                 {"TableName": {"Ref": table_id}}),
                THROTTLES_PER_5_MINUTES, periods=2, namespace="AWS/DynamoDB")
    if STREAM_FAILURE_QUEUE in resources:
        resources[f"{STREAM_FAILURE_QUEUE}Alarm"] = _alarm(
            "A stream batch was given up on: its description waits in StreamFailureQueue",
            ("ApproximateNumberOfMessagesVisible",
             {"QueueName": {"Fn::GetAtt": [STREAM_FAILURE_QUEUE, "QueueName"]}}), 0,
            statistic="Maximum", namespace="AWS/SQS", comparison="GreaterThanThreshold")
    template.setdefault("Outputs", {})["AlarmTopicArn"] = {"Value": {"Ref": ALARM_TOPIC}}


def skip_inapplicable_checks(resources):
    """Write CHECKOV_SKIPS into each resource's Metadata (checkov reads them
    there; CloudFormation ignores them)."""
    for resource in resources.values():
        kind = resource["Type"]
        skips = dict(CHECKOV_SKIPS.get(kind, {}))
        if kind == "AWS::Serverless::Function":
            skips = {**CHECKOV_SKIPS["function"], **CHECKOV_SKIPS[_invocation(resource)]}
            if "ReservedConcurrentExecutions" in resource["Properties"]:
                skips.pop("CKV_AWS_115", None)
        if skips:
            resource.setdefault("Metadata", {})["checkov"] = {"skip": [
                {"id": check, "comment": reason} for check, reason in sorted(skips.items())]}


def fix_template(template, config, stage, settings, environment):
    """`settings`: the stage's, from stage_settings; `environment`: its variables."""
    resources = template["Resources"]
    table_names = wire_table_names(resources)
    if settings.keystone_url == KEYSTONE_URL_PLACEHOLDER:
        wire_keystone_url(template)
    wire_stack_parameters(template, environment, stage)
    stream_roles = configure_stream_sources(
        resources, table_names, function_settings(config, stage, "stream_filters"),
        function_settings(config, stage, "stream_batching_window"))
    if settings.auth_strategy == "noauth":
        drop_authorizer(resources)
    else:
        attach_authorizer(resources, settings)
    wire_cors_and_throttling(resources, settings)
    add_log_groups(template)
    write_policies(resources, settings, stream_roles)
    trace_rest_api(resources)
    # A stage's "deletion_protection" key (Chalice ignores it): prod's tables
    # cannot be deleted, by a stack update or by hand, until it is turned off.
    harden_tables(resources, bool(config.get("stages", {}).get(stage, {}).get(
        "deletion_protection", False)))
    add_alarms(template)
    skip_inapplicable_checks(resources)
    return template


# -- the zip ----------------------------------------------------------------------

ARCHITECTURES = ("x86_64", "arm64")  # Lambda's; Chalice fetches each one's wheels
# Left out of the zip: what vendored distributions ship for their own
# developers (test suites, benchmarks).
ZIP_EXCLUDED = re.compile(r"^[^/]+/(tests|benchmarks)/")
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # as Chalice writes: same input, same zip


def compile_zip(zip_path, runtime):
    """Rewrite the zip without ZIP_EXCLUDED, and with each module's bytecode
    next to its source (__pycache__/*.cpython-311.pyc), so that no cold
    start compiles. Unchecked-hash pycs: Python loads them without comparing
    source timestamps, which a zip round-trip does not keep exactly."""
    version = "%d.%d" % sys.version_info[:2]
    if runtime != f"python{version}":
        raise PackagingError(f"bytecode for {runtime} cannot be compiled by Python {version}")
    with tempfile.TemporaryDirectory(prefix="zaqar-zip-") as tree:
        kept = []
        with zipfile.ZipFile(zip_path) as source:
            for entry in source.infolist():
                if entry.is_dir() or ZIP_EXCLUDED.match(entry.filename):
                    continue
                kept.append((entry, source.read(entry)))
                if entry.filename.endswith(".py"):
                    (Path(tree) / entry.filename).parent.mkdir(parents=True, exist_ok=True)
                    (Path(tree) / entry.filename).write_bytes(kept[-1][1])
        compileall.compile_dir(tree, quiet=2, ddir="/var/task", workers=1,
                               invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        compiled = sorted(Path(tree).rglob("*.pyc"))
        partial = zip_path.with_suffix(".partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as target:
            for entry, data in kept:
                target.writestr(entry, data)
            for path in compiled:
                entry = zipfile.ZipInfo(path.relative_to(tree).as_posix(), ZIP_DATE)
                entry.external_attr = 0o644 << 16
                entry.compress_type = zipfile.ZIP_DEFLATED
                target.writestr(entry, path.read_bytes())
    os.replace(partial, zip_path)


def build_zip(stage: str, arch: str, out_dir: Path) -> Path:
    """The deployment zip of `stage` for Lambda architecture `arch`
    (ARCHITECTURES), built into out_dir (its template beside it); its path."""
    return build(stage, out_dir, arch=arch)[0]


# -- deploying --------------------------------------------------------------------

AWS_CLI_MISSING = ("`aws` (the AWS CLI) is not on PATH. Install version 2: "
                   "https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"
                   " (or `pip install awscli` into a venv of its own), then configure "
                   "credentials (`aws configure` or AWS_PROFILE)")


def deploy_commands(template_path, stack_name, bucket, parameters):
    """The AWS CLI commands that deploy a built template: upload the zip
    (`package` rewrites CodeUri to its S3 object), then create or update the
    stack through a change set. parameters: {stack parameter: value}."""
    template_path = Path(template_path)
    packaged = template_path.with_name("packaged.json")
    deploy = ["aws", "cloudformation", "deploy", "--template-file", str(packaged),
              "--stack-name", stack_name,
              # CAPABILITY_IAM: the functions' roles; AUTO_EXPAND: the SAM transform.
              "--capabilities", "CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND",
              "--no-fail-on-empty-changeset"]
    if parameters:
        deploy += ["--parameter-overrides",
                   *(f"{name}={value}" for name, value in sorted(parameters.items()))]
    return [["aws", "cloudformation", "package", "--template-file", str(template_path),
             "--s3-bucket", bucket, "--s3-prefix", stack_name, "--use-json",
             "--output-template-file", str(packaged)], deploy]


def check_parameters(template, parameters):
    """Refuse, before AWS is called, parameters the stack does not have and
    required ones (no default) left out."""
    declared = template.get("Parameters", {})
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise PackagingError(f"the stack has no parameter {', '.join(unknown)} "
                             f"(it has {', '.join(sorted(declared))})")
    missing = sorted(name for name, definition in declared.items()
                     if "Default" not in definition and name not in parameters)
    if missing:
        raise PackagingError("give " + " ".join(f"{name}=..." for name in missing)
                             + " in PARAMETERS")


def deploy(template_path, stack_name, bucket, parameters):
    check_parameters(json.loads(Path(template_path).read_text()), parameters)
    if not bucket:
        raise PackagingError("name the S3 bucket the code is uploaded to (S3_BUCKET=...)")
    if shutil.which("aws") is None:
        raise PackagingError(AWS_CLI_MISSING)
    for command in deploy_commands(template_path, stack_name, bucket, parameters):
        print("+ " + " ".join(command), flush=True)
        subprocess.run(command, check=True)


# -- command line -------------------------------------------------------------

def build(stage, out_dir, project_dir=PROJECT_DIR, arch="x86_64"):
    """Stage, package and fix up; returns the paths of the zip and template.

    The staging folder is temporary, Chalice's cache of built packages with
    it (rebuilding takes ~2 s); pip-installed pins are kept in build/vendored.
    """
    if arch not in ARCHITECTURES:
        raise PackagingError(f"no Lambda architecture {arch!r} (only {', '.join(ARCHITECTURES)})")
    project_dir, out_dir = Path(project_dir), Path(out_dir).resolve()
    for name in ("deployment.zip", "sam.json"):  # no stale output if this fails
        (out_dir / name).unlink(missing_ok=True)
    settings = stage_settings(stage, project_dir)  # refuse before building anything
    with tempfile.TemporaryDirectory(prefix="zaqar-package-") as stage_dir:
        stage_project(project_dir, Path(stage_dir), project_dir / "build" / "vendored", arch)
        run_chalice_package(Path(stage_dir), stage, out_dir)
    template_path = out_dir / "sam.json"
    try:
        config = json.loads((project_dir / ".chalice" / "config.json").read_text())
        template = fix_template(json.loads(template_path.read_text()), config, stage,
                                settings, stage_environment(stage, project_dir))
        compile_zip(out_dir / "deployment.zip", {
            function["Properties"]["Runtime"]
            for function in _functions(template["Resources"]).values()}.pop())
    except PackagingError:
        # Chalice's template is deployable but wrong (dangling names): drop it.
        template_path.unlink()
        raise
    template_path.write_text(json.dumps(template, indent=2) + "\n")
    return out_dir / "deployment.zip", template_path


def _parameter(text):
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not Name=value")
    return name, value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--arch", default="x86_64", choices=ARCHITECTURES)
    parser.add_argument("--out", help="output folder (default build/package/<stage>-<arch>)")
    parser.add_argument("--project-dir", default=str(PROJECT_DIR))
    parser.add_argument("--deploy", action="store_true",
                        help="then deploy it with the AWS CLI (needs credentials)")
    parser.add_argument("--stack-name", help="default zaqar-<stage>")
    parser.add_argument("--s3-bucket", help="where `aws cloudformation package` uploads the zip")
    parser.add_argument("--parameter", type=_parameter, action="append", default=[],
                        metavar="Name=value", help="a stack parameter (repeatable)")
    args = parser.parse_args(argv)
    project_dir = Path(args.project_dir).resolve()
    out_dir = Path(args.out or project_dir / "build" / "package" / f"{args.stage}-{args.arch}")
    try:
        zip_path, template_path = build(args.stage, out_dir, project_dir, args.arch)
        print(f"{zip_path} ({zip_path.stat().st_size / 1e6:.2f} MB, {args.arch})\n"
              f"{template_path}", flush=True)
        if args.deploy:
            deploy(template_path, args.stack_name or f"zaqar-{args.stage}", args.s3_bucket,
                   dict(args.parameter))
    except (PackagingError, subprocess.CalledProcessError) as error:
        sys.exit(f"{'deploying' if args.deploy else 'packaging'} failed: {error}")


if __name__ == "__main__":
    main()
