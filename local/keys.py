"""API keys from the command line: issue, list, show and revoke them through
the service's admin routes (/v2/keys), with an administrator's credential
(a Keystone token, an admin API key or an admin JWT) in --token or
$ZAQAR_TOKEN.

    python -m local.keys create --project P --role member --name ci [--expires 30d]
    python -m local.keys list --project P
    python -m local.keys show KEY_ID
    python -m local.keys revoke KEY_ID

A stage that takes only API keys has no administrator until one has a key:
`bootstrap` writes a first admin key straight into the stage's keys table
(DynamoDB Local, as `make run` starts it, unless --dynamodb-endpoint says
otherwise), without the service.

    python -m local.keys bootstrap --project ops --name first-admin

A new key is printed once, on its own line, first; it cannot be shown again.
"""
import argparse
import json
import os
import re
import sys
import uuid

import requests

DURATION = re.compile(r"(\d+)([smhd]?)")
SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(text):
    """'90', '15m', '12h' or '30d' in seconds."""
    match = DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 3600, 12h or 30d")
    return int(match[1]) * SECONDS[match[2]]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m local.keys", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8888", help="the service")
    parser.add_argument("--token", default=os.environ.get("ZAQAR_TOKEN"),
                        help="an administrator's credential (default: $ZAQAR_TOKEN)")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("create", "bootstrap"):
        command = commands.add_parser(name)
        command.add_argument("--project", required=True)
        command.add_argument("--name", required=True)
        command.add_argument("--expires", type=seconds, metavar="DURATION",
                             help="how long the key works (3600, 12h, 30d); default: "
                                  "until revoked")
        if name == "create":
            command.add_argument("--role", action="append", default=[], dest="roles",
                                 help="a role of the key (repeat for more)")
        else:
            command.add_argument("--stage", default="dev")
            command.add_argument("--dynamodb-endpoint", default="http://127.0.0.1:8000")
    commands.add_parser("list").add_argument("--project", required=True)
    for name in ("show", "revoke"):
        commands.add_parser(name).add_argument("key_id")
    return parser.parse_args(argv)


def call(args, method, path, body=None, **params):
    """The service's answer (JSON, or None for none); SystemExit on an error."""
    if not args.token:
        raise SystemExit("an administrator's credential is needed: --token or $ZAQAR_TOKEN")
    answer = requests.request(method, f"{args.url.rstrip('/')}{path}", params=params,
                              json=body, timeout=30, headers={
                                  "X-Auth-Token": args.token, "Client-ID": str(uuid.uuid4())})
    if answer.status_code >= 400:
        raise SystemExit(f"{answer.status_code}: {answer.text}")
    return answer.json() if answer.content else None


def bootstrap(args):
    """A first admin key, written into the stage's table directly."""
    from chalicelib.auth import apikey
    from chalicelib.config import get_settings
    from local.stage import stage_environment
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    environment = {**stage_environment(args.stage), **os.environ,
                   "DYNAMODB_ENDPOINT": args.dynamodb_endpoint}
    key, stored = apikey.issue(get_settings(environment), args.project,
                               frozenset({"admin"}), args.name, args.expires)
    return key, stored.id


def main(argv=None):
    args = parse_args(argv)
    if args.command == "bootstrap":
        key, key_id = bootstrap(args)
        print(key)
        print(f"key {key_id}: admin of project {args.project}", file=sys.stderr)
        return
    if args.command == "create":
        body = {"project": args.project, "roles": args.roles, "name": args.name}
        if args.expires is not None:
            body["ttl"] = args.expires
        made = call(args, "POST", "/v2/keys", body)
        print(made.pop("key"))
        print(json.dumps(made, indent=2), file=sys.stderr)
    elif args.command == "list":
        print(json.dumps(call(args, "GET", "/v2/keys", project=args.project)["keys"], indent=2))
    elif args.command == "show":
        print(json.dumps(call(args, "GET", f"/v2/keys/{args.key_id}"), indent=2))
    else:
        call(args, "DELETE", f"/v2/keys/{args.key_id}")
        print(f"revoked {args.key_id}", file=sys.stderr)


if __name__ == "__main__":
    main()
