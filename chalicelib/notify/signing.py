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
