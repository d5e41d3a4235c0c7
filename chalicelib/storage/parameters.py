"""Secrets kept in SSM Parameter Store (SecureStrings), read once per warm
function: the trustee's password (notify/trusts.py), the API keys' HMAC
secret (auth/apikey.py). Their settings name the parameter, never hold it.
"""
from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chalicelib.config import Settings

log = logging.getLogger("zaqar.storage")
_values: dict[str, str] = {}  # parameter name -> its value
_lock = threading.Lock()  # one read at a time (deliveries run in threads)


class Unreadable(Exception):
    """SSM could not be asked, or refused."""


def _read(name: str, settings: Settings) -> str:
    # boto3 here, not at import: few calls need SSM (cold starts).
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    config = Config(connect_timeout=settings.keystone_timeout,
                    read_timeout=settings.keystone_timeout)
    try:
        ssm = boto3.session.Session().client("ssm", region_name=settings.aws_region,
                                             config=config)
        return ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    except (BotoCoreError, ClientError) as error:
        log.error("SSM parameter %s could not be read: %s", name, error)
        raise Unreadable(f"SSM parameter {name} could not be read") from None


def value(plain: str, parameter: str, settings: Settings) -> str:
    """`plain` if no `parameter` is named, else that parameter's value."""
    if not parameter:
        return plain
    with _lock:
        if parameter not in _values:
            _values[parameter] = _read(parameter, settings)
        return _values[parameter]
