"""An OIDC issuer for tests and bench scripts: RSA keys generated here (with
`cryptography`, which only tests and bench use: the service checks
signatures without it), their JWKS served on 127.0.0.1 by http.server, and
tokens signed with them as an identity provider signs them.

    issuer = Issuer()
    token = issuer.token(project="p1", roles=["member"])
    issuer.rotate()      # a new signing key, published beside the old one
    issuer.close()
"""
import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

AUDIENCE = "zaqar-web"


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _number(value):
    return b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jws(header, claims, sign):
    """The compact JWS of `claims` under `header`, signed by sign(bytes)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


class Issuer:
    def __init__(self):
        self.keys = {"key-1": new_key()}
        self.signing = "key-1"
        self.fetches = 0
        self.down = False
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path != "/.well-known/jwks.json" or issuer.down:
                    self.send_response(404 if not issuer.down else 503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                issuer.fetches += 1
                body = json.dumps(issuer.jwks()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def jwks(self):
        return {"keys": [
            {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
             "n": _number(key.public_key().public_numbers().n),
             "e": _number(key.public_key().public_numbers().e)}
            for kid, key in self.keys.items()]}

    def rotate(self):
        kid = f"key-{len(self.keys) + 1}"
        self.keys[kid] = new_key()
        self.signing = kid
        return kid

    def claims(self, project="p1", roles=("member",), now=None, **changes):
        now = time.time() if now is None else now
        claims = {"iss": self.url, "aud": AUDIENCE, "sub": "user-1", "token_use": "id",
                  "iat": int(now), "exp": int(now) + 3600,
                  "custom:project_id": project, "cognito:groups": list(roles)}
        claims.update(changes)
        return {name: value for name, value in claims.items() if value is not None}

    def token(self, claims=None, key=None, kid=None, alg="RS256", **claim_changes):
        """A token signed RS256 with the issuer's signing key (or `key`)."""
        kid = kid or self.signing
        key = key or self.keys[kid]
        return jws({"alg": alg, "typ": "JWT", "kid": kid},
                   claims or self.claims(**claim_changes),
                   lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256()))

    def unsigned(self, **claim_changes):
        """alg none, no signature, as an attacker would send it."""
        header = {"alg": "none", "typ": "JWT", "kid": self.signing}
        token = jws(header, self.claims(**claim_changes), lambda data: b"")
        return token + "x"  # a signature part, so it still has three parts

    def hs256_with_public_key(self, **claim_changes):
        """HS256 with the public key's JWKS entry as the secret: the
        algorithm-confusion attack."""
        secret = json.dumps(self.jwks()["keys"][0]).encode()
        return jws({"alg": "HS256", "typ": "JWT", "kid": self.signing},
                   self.claims(**claim_changes),
                   lambda data: hmac.new(secret, data, hashlib.sha256).digest())

    def close(self):
        self.server.shutdown()
        self.server.server_close()
