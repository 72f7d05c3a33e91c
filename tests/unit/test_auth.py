"""Verifying callers' tokens (api/auth.py): every way a token can be wrong is UNAUTHENTICATED,
the algorithms are pinned to the key's kind, and a JWKS key rotation is learned at once."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from api.auth import (
    ANONYMOUS,
    OPEN_MODE,
    Authenticator,
    OpenModeRefused,
    Unauthenticated,
    authorization_of,
    check_open_mode,
    is_loopback,
    mint,
)
from api.settings import Settings

SECRET = "a-secret-of-at-least-thirty-two-bytes!!"


def hs256(**claims: Any) -> str:
    payload = {"sub": "alice", "roles": ["user"], "exp": int(time.time()) + 60, **claims}
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, SECRET, "HS256")


def secret_auth(**settings: Any) -> Authenticator:
    return Authenticator(Settings(jwt_secret=SECRET, **settings))


async def test_a_good_token_gives_its_subject_roles_and_expiry() -> None:
    exp = int(time.time()) + 60
    identity = await secret_auth().identify(f"Bearer {hs256(exp=exp, roles=['admin', 'user'])}")
    assert (identity.subject, identity.roles, identity.expires_at) == (
        "alice",
        frozenset({"admin", "user"}),
        exp,
    )
    assert identity.is_admin and identity.actor == "alice"


@pytest.mark.parametrize(
    ("header", "why"),
    [
        ("Basic YWxpY2U6cHc=", "Bearer"),
        ("Bearer", "Bearer"),
        ("Bearer   ", "Bearer"),
        ("Bearer not.a.token", "not valid"),
        (f"Bearer {hs256(exp=int(time.time()) - 5)}", "expired"),
        (f"Bearer {hs256(exp=None)}", "exp"),
        (f"Bearer {hs256(sub=None)}", "sub"),
        (
            f"Bearer {jwt.encode({'sub': 'a', 'exp': 9999999999}, 'another-secret-32-bytes-long!!!!', 'HS256')}",
            "Signature",
        ),
        (f"Bearer {jwt.encode({'sub': 'a', 'exp': 9999999999}, None, 'none')}", "not valid"),
    ],
)
async def test_a_bad_token_is_unauthenticated(header: str, why: str) -> None:
    with pytest.raises(Unauthenticated, match=why):
        await secret_auth().identify(header)


async def test_issuer_and_audience_must_match_when_configured() -> None:
    auth = secret_auth(jwt_issuer="https://id.example.com", jwt_audience="chronicle")
    good = hs256(iss="https://id.example.com", aud="chronicle")
    assert (await auth.identify(f"Bearer {good}")).subject == "alice"
    for bad in (
        hs256(iss="https://evil.example.com", aud="chronicle"),
        hs256(iss="https://id.example.com", aud="another-api"),
        hs256(aud="chronicle"),
        hs256(iss="https://id.example.com"),
    ):
        with pytest.raises(Unauthenticated):
            await auth.identify(f"Bearer {bad}")


async def test_roles_come_from_the_configured_claim_and_unknown_roles_are_dropped() -> None:
    auth = secret_auth(jwt_roles_claim="https://chronicle/roles")
    token = hs256(roles=None, **{"https://chronicle/roles": ["admin", "root", 7]})
    assert (await auth.identify(f"Bearer {token}")).roles == frozenset({"admin"})
    assert (await auth.identify(f"Bearer {hs256(roles='admin')}")).roles == frozenset()


async def test_no_header_is_anonymous_and_open_mode_is_an_admin() -> None:
    assert await secret_auth().identify(None) == ANONYMOUS
    assert await secret_auth().identify("  ") == ANONYMOUS
    open_mode = Authenticator(Settings())
    assert open_mode.open and await open_mode.identify(None) == OPEN_MODE
    assert OPEN_MODE.is_admin and OPEN_MODE.actor == "open-mode"


def test_the_websocket_payload_key_is_read_in_either_casing() -> None:
    assert authorization_of({"Authorization": "Bearer a"}) == "Bearer a"
    assert authorization_of({"authorization": "Bearer b"}) == "Bearer b"
    assert authorization_of({"Authorization": 7}) is None
    assert authorization_of(None) is None


def test_open_mode_serves_loopback_only_unless_turned_off_on_purpose() -> None:
    for host in ("127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"):
        assert is_loopback(host), host
        check_open_mode(Settings(host=host), Authenticator(Settings(host=host)))
    for host in ("0.0.0.0", "::", "10.0.0.5", "example.com"):
        settings = Settings(host=host)
        with pytest.raises(OpenModeRefused, match="CHRONICLE_AUTH=off"):
            check_open_mode(settings, Authenticator(settings))
        check_open_mode(Settings(host=host, auth_off=True), Authenticator(settings))
        secured = Settings(host=host, jwt_secret=SECRET)
        check_open_mode(secured, Authenticator(secured))


async def test_a_minted_token_verifies() -> None:
    token = mint(SECRET, "bob", ["admin"], 60, iss="i", aud="a")
    auth = secret_auth(jwt_issuer="i", jwt_audience="a")
    identity = await auth.identify(f"Bearer {token}")
    assert (identity.subject, identity.roles) == ("bob", frozenset({"admin"}))


# ---------------------------------------------------------------- JWKS


class Keys:
    """A JWKS endpoint on a local HTTP server, whose published keys the test changes."""

    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []
        self.fetches = 0
        keys = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                keys.fetches += 1
                body = json.dumps({"keys": keys.published}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"

    def publish(self, kid: str, key: Any) -> None:
        jwk = json.loads(
            jwt.algorithms.get_default_algorithms()[_alg(key)].to_jwk(key.public_key())
        )
        self.published.append({**jwk, "kid": kid, "use": "sig"})


def _alg(key: Any) -> str:
    return "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS256"


def signed(key: Any, kid: str, **claims: Any) -> str:
    payload = {"sub": "carol", "roles": ["user"], "exp": int(time.time()) + 60, **claims}
    return jwt.encode(payload, key, algorithm=_alg(key), headers={"kid": kid})


@pytest.fixture
def keys() -> Iterator[Keys]:
    served = Keys()
    thread = threading.Thread(target=served.server.serve_forever, daemon=True)
    thread.start()
    yield served
    served.server.shutdown()
    served.server.server_close()


async def test_jwks_keys_verify_and_a_rotated_key_is_learned_at_once(keys: Keys) -> None:
    first = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys.publish("k1", first)
    # No refresh cooldown here: the test rotates within its 30 s.
    auth = Authenticator(Settings(jwt_jwks_url=keys.url), jwks_cooldown=0)
    assert (await auth.identify(f"Bearer {signed(first, 'k1')}")).subject == "carol"
    assert (await auth.identify(f"Bearer {signed(first, 'k1', sub='dave')}")).subject == "dave"
    assert keys.fetches == 1  # cached

    # The issuer rotates to an EC key: a token with the new kid reads the JWKS again.
    second = ec.generate_private_key(ec.SECP256R1())
    keys.publish("k2", second)
    assert (await auth.identify(f"Bearer {signed(second, 'k2')}")).subject == "carol"
    assert keys.fetches == 2

    # A kid the issuer never published, and a key of ours under a published kid: refused.
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for token in (signed(stranger, "k9"), signed(stranger, "k1")):
        with pytest.raises(Unauthenticated):
            await auth.identify(f"Bearer {token}")


async def test_unknown_kids_do_not_make_the_service_hammer_the_jwks(keys: Keys) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys.publish("k1", key)
    auth = Authenticator(Settings(jwt_jwks_url=keys.url))  # the default cooldown
    assert (await auth.identify(f"Bearer {signed(key, 'k1')}")).subject == "carol"
    for n in range(20):
        with pytest.raises(Unauthenticated):
            await auth.identify(f"Bearer {signed(key, f'made-up-{n}')}")
    assert keys.fetches <= 2


async def test_a_public_key_passed_off_as_an_hmac_secret_is_refused(keys: Keys) -> None:
    """The classic algorithm confusion: an HS256 token 'signed' with the RS256 public key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys.publish("k1", key)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode()
    payload = json.dumps({"sub": "mallory", "exp": int(time.time()) + 60}).encode()
    forged = _hs256_by_hand(header, payload, pem)
    with pytest.raises(Unauthenticated):
        await Authenticator(Settings(jwt_jwks_url=keys.url)).identify(f"Bearer {forged}")


def _hs256_by_hand(header: bytes, payload: bytes, secret: bytes) -> str:
    """PyJWT refuses to sign with a PEM as an HMAC secret, as an attacker's tool would not."""
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(header)}.{b64(payload)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"
