"""Settings, read from environment variables.

The variables are set per stage in `.chalice/config.json` (on Lambda, the
function's environment). Each invocation builds its Settings once, at its
entry point, and hands them down; storage is pointed at the tables they name
there too (storage.configure). Nothing reads the environment at
import, so the Chalice test client, which applies stage variables only while
a request runs, sees them too. Defaults are Zaqar's.
"""
import os
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Settings:
    # Where the data is: the stage's tables, the region, and an endpoint for
    # DynamoDB Local (empty: the region's own).
    queues_table: str = "zaqar-queues"
    messages_table: str = "zaqar-messages"
    subscriptions_table: str = "zaqar-subscriptions"
    connections_table: str = "zaqar-connections"
    keys_table: str = "zaqar-keys"
    aws_region: str = "us-east-1"
    dynamodb_endpoint: str = ""
    # Who may call: "keystone" (tokens validated against keystone_url),
    # "apikey" (keys issued by an admin), "jwt" (an OIDC issuer's tokens),
    # or a comma list of those three, each credential checked by the mode
    # its form names; or "noauth" alone (X-Project-ID trusted; the dev stage
    # only, or with allow_noauth, see chalicelib/auth). Unset means keystone:
    # a stage that names no mode refuses every caller rather than trusting
    # them all.
    stage: str = ""
    auth_strategy: str = "keystone"
    allow_noauth: bool = False
    keystone_url: str = ""  # the identity v3 endpoint, e.g. https://keystone:5000/v3
    keystone_timeout: int = 5  # seconds for each call to Keystone
    # How long a validated token is believed without asking Keystone again
    # (never past its expiry): a revoked token works this long. A trust's
    # token is reused for deliveries this long too (notify/trusts.py).
    keystone_cache_seconds: int = 300
    # The trustee of trust+ subscriptions: the service's own Keystone user,
    # to which subscribers delegate their roles; without it trust+
    # subscribers are refused. Its password is given plainly (dev and local
    # runs only: packaging refuses it in a stage that authenticates) or,
    # deployed, as the name of an SSM SecureString, read once per warm
    # function. One of the two, not both.
    keystone_trustee_user: str = ""
    keystone_trustee_domain: str = "Default"  # the user's domain, by name
    keystone_trustee_password: str = ""
    keystone_trustee_password_parameter: str = ""
    # API keys (auth/apikey.py): stored only as an HMAC-SHA256 of the key
    # under this secret, given plainly (dev and local runs) or, deployed, as
    # the name of an SSM SecureString; one of the two. A validated key is
    # believed this long (60 at most): a revoked key works this long.
    api_key_secret: str = ""
    api_key_secret_parameter: str = ""
    api_key_cache_seconds: int = 60
    # OIDC/JWT (auth/oidc.py): RS256 tokens of this issuer (its `iss`) for
    # this audience (`aud`, or a Cognito access token's `client_id`; a comma
    # list accepts any of them), checked against the issuer's keys (default
    # <issuer>/.well-known/jwks.json, kept jwt_jwks_cache_seconds). The
    # project is the claim jwt_project_claim, the roles jwt_roles_claim (a
    # list, or a string of names separated by blanks or commas).
    jwt_issuer: str = ""
    jwt_audience: str = ""
    jwt_jwks_url: str = ""
    jwt_project_claim: str = "custom:project_id"
    jwt_roles_claim: str = "cognito:groups"
    jwt_clock_skew: int = 60  # seconds exp and nbf may be off by
    jwt_jwks_cache_seconds: int = 3600
    jwt_timeout: int = 5  # seconds for each JWKS fetch
    # Rules over Zaqar's default policy, as JSON {"rule": "check"}; see
    # chalicelib/auth/policy.py for the checks understood.
    policy: str = ""
    # Features.
    admin_mode: bool = False
    # Pools and flavors (contract §3.6-3.7): with admin_mode, the admin
    # routes that place queues of a flavor on other DynamoDB tables.
    pooling: bool = False
    client_id_uuid_safe: str = "strict"
    min_length_client_id: int = 10
    max_length_client_id: int = 36
    enable_checksum: bool = False
    message_delete_with_claim_id: bool = False
    # Paging limits.
    max_queues_per_page: int = 20
    max_messages_per_page: int = 20
    max_messages_per_claim_or_pop: int = 20
    max_subscriptions_per_page: int = 20
    # Not Zaqar's (it has none): the most messages one post may hold, so that
    # a post lands well inside its write window (POST_ABORT_MS) and within a
    # second of one DynamoDB partition's write capacity. bench/post_size.py.
    max_messages_per_post: int = 1000
    # Sizes, in bytes.
    max_queue_metadata: int = 65536
    max_messages_post_size: int = 262144
    # Lifetimes, in seconds.
    default_message_ttl: int = 3600
    max_message_ttl: int = 1209600
    default_message_delay: int = 0
    max_message_delay: int = 900
    default_claim_ttl: int = 300
    default_claim_grace: int = 60
    max_claim_ttl: int = 43200
    max_claim_grace: int = 43200
    default_subscription_ttl: int = 3600
    # Notifications.
    require_confirmation: bool = False
    max_notifier_workers: int = 10  # deliveries in flight per function call
    webhook_timeout: int = 5  # seconds to connect, and to wait for each read
    # Non-public networks webhooks may reach, as comma-separated CIDRs. None
    # by default: a subscriber must not make the service call into its own
    # network (metadata endpoints, private services).
    webhook_allowed_networks: str = ""
    ses_from_address: str = ""  # a verified SES identity; mail's default From
    ses_region: str = ""  # default: the function's own region
    external_confirmation_url: str = ""  # the page mail confirmations link to
    # Signed URLs: the HMAC key. Without it no confirmation can be signed.
    # Given plainly (dev and local runs only, as the trustee's password) or,
    # deployed, as the name of an SSM SecureString (notify/secrets.py).
    signed_url_secret_key: str = ""
    signed_url_secret_key_parameter: str = ""
    # CORS (chalicelib/cors.py): the origins whose pages may call, as a comma
    # list (none by default; "*" only without credentials), and what they may
    # send, read and keep. The URL-* headers are signed URLs' (signed_urls.py).
    cors_allowed_origins: str = ""
    cors_allowed_methods: str = "GET, HEAD, POST, PUT, PATCH, DELETE"
    cors_allowed_headers: str = ("Accept, Authorization, Client-ID, Content-Type, "
                                 "URL-Expires, URL-Methods, URL-Paths, URL-Signature, "
                                 "X-Auth-Token, X-Project-ID")
    cors_expose_headers: str = "Location, Retry-After, WWW-Authenticate, x-openstack-request-id"
    cors_max_age: int = 3600  # seconds a browser may keep a preflight's answer
    cors_allow_credentials: bool = False
    # Requests per second each project may make, and the burst it may save
    # up, in each warm function (chalicelib/throttle.py); 0: no limit. On AWS
    # the stage's own throttling (infra/package.py) bounds the whole API.
    project_rate_limit: int = 0
    project_burst_limit: int = 0  # 0: as many as project_rate_limit
    api_rate_limit: int = 0  # the whole stage, by API Gateway; 0: AWS's account limit
    api_burst_limit: int = 0
    # Quotas, Zaqar-style limits on what one project may keep (0: none):
    # queues per project, messages kept per queue (free, claimed and delayed,
    # as the stats count them: see actions/quotas.py for how exact), and
    # subscriptions per queue.
    max_queues_per_project: int = 0
    max_messages_per_queue: int = 0
    max_subscriptions_per_queue: int = 0


_TRUE = {"1", "true", "yes", "on", "t", "y"}


def _parse(kind, text):
    if kind is bool:
        return text.strip().lower() in _TRUE
    if kind is int:
        return int(text)
    return text


def get_settings(environ=None):
    """Build Settings from `environ` (default: os.environ).

    Each field is read from the upper-cased variable of the same name, for
    example MAX_MESSAGES_PER_PAGE.
    """
    environ = os.environ if environ is None else environ
    values = {}
    for field in fields(Settings):
        text = environ.get(field.name.upper())
        if text is not None and text != "":
            values[field.name] = _parse(field.type, text)
    return Settings(**values)
