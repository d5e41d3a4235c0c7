"""Secrets a deployed stage keeps in SSM Parameter Store (SecureStrings).

The stage names a secret's parameter in a setting ending in `_parameter`
(packaging grants each function ssm:GetParameter on exactly the parameters
its variables name); dev and local runs may give the secret itself in the
setting without the suffix. A parameter is read when first needed, then
kept for the life of the warm function: a changed secret is seen by new
instances only.
"""
from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from chalicelib.errors import ServiceUnavailable

if TYPE_CHECKING:
    from chalicelib.config import Settings

log = logging.getLogger("zaqar.secrets")
SSM_TIMEOUT_S = 5  # to connect, and to read SSM's answer

_values: dict[str, str] = {}  # parameter name -> its value
# Requests and deliveries run in threads: one read of a parameter at a time.
_lock = threading.Lock()


def _fetch(name: str, settings: Settings) -> str:
    # boto3 here, not at import: most calls need no secret (cold starts).
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    config = Config(connect_timeout=SSM_TIMEOUT_S, read_timeout=SSM_TIMEOUT_S)
    try:
        ssm = boto3.session.Session().client("ssm", region_name=settings.aws_region,
                                             config=config)
        return ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    except (BotoCoreError, ClientError) as error:
        log.error("SSM parameter %s could not be read: %s", name, error)
        raise ServiceUnavailable(f"A secret of this service could not be read "
                                 f"(SSM parameter {name}).") from None


def value(plain: str, parameter: str, settings: Settings) -> str:
    """`plain` when no `parameter` is named, else that SSM parameter's value,
    decrypted; ServiceUnavailable (503) when it cannot be read (missing, not
    granted, SSM unreachable)."""
    if not parameter:
        return plain
    with _lock:
        if parameter not in _values:
            _values[parameter] = _fetch(parameter, settings)
        return _values[parameter]


def signed_url_key(settings: Settings) -> str:
    """The HMAC key of signed URLs: SIGNED_URL_SECRET_KEY, or the parameter
    SIGNED_URL_SECRET_KEY_PARAMETER names; empty when neither is set."""
    return value(settings.signed_url_secret_key, settings.signed_url_secret_key_parameter,
                 settings)
