"""Pre-signed URLs, as Zaqar signs them (its `signed_url` feature).

The signature is an HMAC-SHA256, keyed with the `signed_url_secret_key`
setting, over the sorted paths, the sorted methods, the project and the
expiry. Confirmation requests carry one that allows PUT on the confirm path.
"""
import datetime
import hashlib
import hmac

EXPIRES_FORMAT = "%Y-%m-%dT%H:%M:%S"


def expires_text(epoch_ms):
    """An expiry as signed: UTC, to the second, without a zone."""
    moment = datetime.datetime.fromtimestamp(epoch_ms // 1000, datetime.timezone.utc)
    return moment.strftime(EXPIRES_FORMAT)


def signature(key, paths, methods, project, expires):
    # Zaqar joins the parts with backslash-n: two characters, not a newline.
    text = r"\n".join([",".join(sorted(paths)), ",".join(sorted(methods)),
                       str(project), expires])
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()


def sign(key, paths, methods, project, expires_ms):
    """A signed URL: {"paths", "methods", "project", "expires", "signature"}."""
    expires = expires_text(expires_ms)
    return {"paths": sorted(paths), "methods": sorted(methods), "project": project,
            "expires": expires,
            "signature": signature(key, paths, methods, project, expires)}


def parse_expires(text):
    """An expiry as sent: ISO 8601, naive meaning UTC; epoch ms, or None."""
    try:
        moment = datetime.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return int(moment.timestamp() * 1000)


def covers(signed_path, path):
    """A signed path covers itself and what lies below it (a message under
    .../messages, a claim under .../claims), as Zaqar's prefix match does."""
    return bool(signed_path) and (path == signed_path
                                  or path.startswith(signed_path.rstrip("/") + "/"))


def allows(headers, key, method, path, project, now_ms):
    """True if the request's URL-* headers are a valid signature for it, as
    Zaqar checks them: the method is signed, some signed path covers the
    request's path, the expiry is ahead, and the HMAC of the header values,
    with the project the request acts on, is the signature.

    The lists are taken exactly as sent: an order other than the signer's is
    fine (both sides sort), but an empty entry (a trailing comma) is signed
    too, so it fails. A request that names no project is never allowed: a
    signature binds one project.
    """
    given = headers.get("url-signature") or ""
    methods = (headers.get("url-methods") or "").split(",")
    paths = (headers.get("url-paths") or "").split(",")
    expires = headers.get("url-expires") or ""
    expires_ms = parse_expires(expires)
    if not (key and given and project and method in methods and expires_ms
            and expires_ms > now_ms):
        return False
    if not any(covers(signed, path) for signed in paths):
        return False
    expected = signature(key, paths, methods, project, expires)
    return hmac.compare_digest(expected, given)
