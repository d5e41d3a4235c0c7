#!/usr/bin/env python
"""Build the Lambda package and the SAM template of one stage.

    python infra/package.py --stage dev [--out build/package/dev]

then deploy with `aws cloudformation package` + `deploy` (see infra/README.md).

Plain `chalice package` is not enough, for three reasons:

* Size. pynamodb depends on botocore (~16 MB), which the Lambda runtime already
  has. The project is copied to a staging folder whose requirements.txt leaves
  pynamodb out; pynamodb goes into the staged vendor/ without its dependencies.
  schemas/ goes into vendor/ too: Chalice puts vendor/'s contents at the zip
  root, where chalicelib/validation.py looks for it.
* Wiring. `--merge-template` (infra/resources.json) adds the tables and the
  API's gateway responses, but can only add or override keys. Replacing
  literals Chalice wrote (table names, the stream ARN, ARN patterns in the IAM
  policy) and configuring the stream event sources is done here, on the
  generated template, for whatever functions the app has.
* Authentication. The stage's settings are checked (chalicelib.auth) before
  anything is built. A stage that authenticates gets API Gateway's REQUEST
  authorizer (the app's `authorize` function, which Chalice packages as a
  plain function) on every route Zaqar does not leave open, its gateway
  responses, and its Keystone URL as a template parameter unless the stage
  names one; a noauth stage gets no authorizer. Secrets travel by reference:
  a `*_PARAMETER` variable names an SSM parameter its functions may read.
"""
import argparse
import copy
import dataclasses
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
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
from chalicelib.config import get_settings  # noqa: E402
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
STREAM_READ_ACTIONS = {"dynamodb:DescribeStream", "dynamodb:GetRecords",
                       "dynamodb:GetShardIterator", "dynamodb:ListStreams"}
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
# Functions whose role keeps only these statements of .chalice/policy.json:
# the authorizer reads no table, sends no mail, pushes to no websocket.
ROLE_STATEMENTS = {AUTHORIZER_FUNCTION: {"Logs"}}
# ...and the only SSM parameters they may read: the authorizer, the trustee's
# password, to validate the trust-scoped tokens of trust subscribers posting
# back (Keystone lets such a token not validate itself), and the API keys'
# HMAC secret.
ROLE_PARAMETERS = {AUTHORIZER_FUNCTION: {"KEYSTONE_TRUSTEE_PASSWORD_PARAMETER",
                                         "API_KEY_SECRET_PARAMETER"}}
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


def stage_project(project_dir, stage_dir, cache_dir):
    """Copy what the Lambda needs into the empty stage_dir, laid out for Chalice."""
    (stage_dir / ".chalice").mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copy2(project_dir / "app.py", stage_dir / "app.py")
    for path in (project_dir / ".chalice").glob("*.json"):  # config, IAM policies
        shutil.copy2(path, stage_dir / ".chalice" / path.name)
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


def _sub_arn(match, resource):
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:{match['service']}:${{AWS::Region}}:"
                       f"${{AWS::AccountId}}:{resource}"}


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


def _table_of(pattern, table_names):
    matches = {logical_id for name, logical_id in table_names.items()
               if fnmatch.fnmatchcase(name, pattern)}
    if len(matches) != 1:
        raise PackagingError(f"table pattern {pattern!r} matches {sorted(matches) or 'no'} "
                             f"table of this stage ({sorted(table_names)})")
    return matches.pop()


def _resolve_arn(arn, table_names, resources):
    """An ARN of the policy file, made exact for this stack; None when the
    thing it names does not exist in this stack."""
    match = ARN.match(arn) if isinstance(arn, str) else None
    if not match:
        return arn
    if match["service"] == "dynamodb":
        table = TABLE_RESOURCE.match(match["resource"])
        if table:
            logical_id = _table_of(table["name"], table_names)
            return {"Fn::Sub": f"${{{logical_id}.Arn}}{table['rest'] or ''}"}
    if match["service"] == "execute-api":
        if WEBSOCKET_API not in resources:
            return None
        _, _, rest = match["resource"].partition("/")
        return _sub_arn(match, f"${{{WEBSOCKET_API}}}/{rest}")
    return _sub_arn(match, match["resource"])


def _actions(statement):
    actions = statement["Action"]
    return {actions} if isinstance(actions, str) else set(actions)


def tighten_policies(resources, table_names, stream_roles):
    """Rewrite the IAM policy Chalice copied from .chalice/policy.json into
    each function's role: ARN patterns become this stack's resources, stream
    reading stays only with stream handlers, and stream handlers may send
    their failures to the failure queue."""
    for role_id, role in _of_type(resources, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            statements = []
            for statement in policy["PolicyDocument"]["Statement"]:
                if _actions(statement) <= STREAM_READ_ACTIONS and role_id not in stream_roles:
                    continue
                arns = statement["Resource"]
                arns = [arns] if isinstance(arns, str) else arns
                resolved = [_resolve_arn(arn, table_names, resources) for arn in arns]
                resolved = [arn for arn in resolved if arn is not None]
                if resolved:
                    statements.append(dict(statement, Resource=resolved))
            if role_id in stream_roles:
                statements.append({
                    "Sid": "StreamFailures", "Effect": "Allow", "Action": "sqs:SendMessage",
                    "Resource": {"Fn::GetAtt": [STREAM_FAILURE_QUEUE, "Arn"]}})
            policy["PolicyDocument"]["Statement"] = statements


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


def grant_ssm_parameters(resources):
    """Each function may read the SSM parameters its *_PARAMETER variables
    name (ssm:GetParameter on exactly those ARNs); it has their names only.
    No kms:Decrypt: the default key, aws/ssm, lets every principal of the
    account decrypt through SSM. A parameter encrypted with a customer
    managed key needs kms:Decrypt on that key as well."""
    granted = {}
    for function_id, function in _functions(resources).items():
        for variable, name in _variables(function).items():
            if not variable.endswith(SSM_PARAMETER_SUFFIX):
                continue
            if not isinstance(name, str) or not SSM_PARAMETER_NAME.match(name):
                raise PackagingError(f"{variable} of {function_id} is {name!r}, "
                                     "not the name of an SSM parameter")
            arn = {"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:"
                              f"parameter/{name.lstrip('/')}"}
            role_id = _role_of(function)
            if role_id and arn not in granted.setdefault(role_id, []):
                granted[role_id].append(arn)
    for role_id, arns in granted.items():
        resources[role_id]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(
            {"Sid": "Parameters", "Effect": "Allow", "Action": "ssm:GetParameter",
             "Resource": arns})


def restrict_roles(resources, role_statements=ROLE_STATEMENTS,
                   role_parameters=ROLE_PARAMETERS):
    """Cut the roles of the functions in role_statements down to the listed
    statements of the policy file (Chalice gives each function a copy of all
    of it), and drop the *_PARAMETER variables those functions may not read
    (grant_ssm_parameters, after this, grants the ones left)."""
    for function_id, sids in role_statements.items():
        if function_id not in resources:
            continue
        function = resources[function_id]
        role_id = _role_of(function)
        sharing = sorted(other_id for other_id, other in _functions(resources).items()
                         if other_id != function_id and _role_of(other) == role_id)
        if role_id is None or sharing:
            raise PackagingError(f"{function_id} must have a role of its own, not "
                                 f"{role_id or 'a given one'} (shared with {sharing})")
        for policy in resources[role_id]["Properties"].get("Policies", []):
            document = policy["PolicyDocument"]
            document["Statement"] = [statement for statement in document["Statement"]
                                     if statement.get("Sid") in sids]
            if not document["Statement"]:
                raise PackagingError(f"the policy file has none of {sorted(sids)}, "
                                     f"which {function_id} needs")
        variables = _variables(function)
        allowed = role_parameters.get(function_id, set())
        for variable in [name for name in variables if name.endswith(SSM_PARAMETER_SUFFIX)
                         and name not in allowed]:
            del variables[variable]


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


def grant_key_reads(resources):
    """An apikey stage's authorizer reads keys and marks their last use."""
    role_id = _role_of(resources[AUTHORIZER_FUNCTION])
    resources[role_id]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(
        {"Sid": "KeysRead", "Effect": "Allow",
         "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"],
         "Resource": {"Fn::GetAtt": ["KeysTable", "Arn"]}})


def fix_template(template, config, stage, settings):
    """`settings`: the stage's, from stage_settings."""
    resources = template["Resources"]
    table_names = wire_table_names(resources)
    if settings.keystone_url == KEYSTONE_URL_PLACEHOLDER:
        wire_keystone_url(template)
    stream_roles = configure_stream_sources(
        resources, table_names, function_settings(config, stage, "stream_filters"),
        function_settings(config, stage, "stream_batching_window"))
    tighten_policies(resources, table_names, stream_roles)
    if settings.auth_strategy == "noauth":
        drop_authorizer(resources)
    else:
        attach_authorizer(resources, settings)
    wire_cors_and_throttling(resources, settings)
    restrict_roles(resources)
    if "apikey" in modes(settings):
        grant_key_reads(resources)
    grant_ssm_parameters(resources)
    return template


# -- command line -------------------------------------------------------------

def build(stage, out_dir, project_dir=PROJECT_DIR):
    """Stage, package and fix up; returns the paths of the zip and template.

    The staging folder is temporary, Chalice's cache of built packages with
    it (rebuilding takes ~2 s); pip-installed pins are kept in build/vendored.
    """
    project_dir, out_dir = Path(project_dir), Path(out_dir).resolve()
    for name in ("deployment.zip", "sam.json"):  # no stale output if this fails
        (out_dir / name).unlink(missing_ok=True)
    settings = stage_settings(stage, project_dir)  # refuse before building anything
    with tempfile.TemporaryDirectory(prefix="zaqar-package-") as stage_dir:
        stage_project(project_dir, Path(stage_dir), project_dir / "build" / "vendored")
        run_chalice_package(Path(stage_dir), stage, out_dir)
    template_path = out_dir / "sam.json"
    try:
        config = json.loads((project_dir / ".chalice" / "config.json").read_text())
        template = fix_template(json.loads(template_path.read_text()), config, stage,
                                settings)
    except PackagingError:
        # Chalice's template is deployable but wrong (dangling names): drop it.
        template_path.unlink()
        raise
    template_path.write_text(json.dumps(template, indent=2) + "\n")
    return out_dir / "deployment.zip", template_path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--out", help="output folder (default build/package/<stage>)")
    parser.add_argument("--project-dir", default=str(PROJECT_DIR))
    args = parser.parse_args(argv)
    project_dir = Path(args.project_dir).resolve()
    out_dir = Path(args.out or project_dir / "build" / "package" / args.stage)
    try:
        zip_path, template_path = build(args.stage, out_dir, project_dir)
    except (PackagingError, subprocess.CalledProcessError) as error:
        sys.exit(f"packaging failed: {error}")
    print(f"{zip_path} ({zip_path.stat().st_size / 1e6:.2f} MB)\n{template_path}")


if __name__ == "__main__":
    main()
