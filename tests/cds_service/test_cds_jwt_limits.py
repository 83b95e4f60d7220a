"""Issue 22, item 5: malformed but signed-looking tokens are refused with 401, never a 500."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cds_testkit import ISSUER, JwksServer, claims, ec_key, rsa_key, sign
from test_cds_jwt import assert_rejected, aud, call


@pytest.fixture(scope="module")
def jwks_without_alg() -> Iterator[tuple[JwksServer, object, object]]:
    """An issuer whose JWKs name no `alg` (RFC 7517 makes it optional)."""
    ec, rsa = ec_key("bare-ec"), rsa_key("bare-rsa")
    bare = [{k: v for k, v in key.public_jwk.items() if k != "alg"} for key in (ec, rsa)]
    server = JwksServer({"issuer": bare})
    yield server, ec, rsa
    server.close()


@pytest.fixture
def bare_secured(live_server, jwks_without_alg):
    server, _, _ = jwks_without_alg
    return live_server(jwt_required=True, jwt_issuers={ISSUER: f"{server.url}/issuer.json"})


def test_an_es384_token_naming_an_rsa_key_is_refused(bare_secured, jwks_without_alg):
    _, ec, rsa = jwks_without_alg
    token = sign(ec, claims(aud(bare_secured)), kid=rsa.kid)  # alg ES384, kid of an RSA key
    assert_rejected(call(bare_secured, token), token, "cannot verify")


def test_an_rs384_token_naming_an_ec_key_is_refused(bare_secured, jwks_without_alg):
    _, ec, rsa = jwks_without_alg
    token = sign(rsa, claims(aud(bare_secured)), kid=ec.kid)
    assert_rejected(call(bare_secured, token), token, "cannot verify")


@pytest.mark.parametrize("iat", ["1700000000", None, True, [1]])
def test_a_signed_token_whose_iat_is_not_a_number_is_refused(bare_secured, jwks_without_alg, iat):
    _, ec, _ = jwks_without_alg
    token = sign(ec, claims(aud(bare_secured), iat=iat) | ({"iat": None} if iat is None else {}))
    assert_rejected(call(bare_secured, token), token, "iat")
