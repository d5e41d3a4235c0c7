"""The local Keystone (local/keystone.py) does what the service will rely on:
project-scoped tokens that validate, revocation, the seeded projects and
roles, and the catalog entry that sends clients to the runner."""
from datetime import datetime, timezone

import pytest

from local.keystone import (
    SERVICE_USER,
    USERS,
    KeystoneError,
    issue_token,
    register_messaging_endpoint,
    revoke,
    validate_token,
)


def token_for(keystone, name):
    user = USERS[name]
    return issue_token(keystone.url, user.name, user.password, user.project)


def role_names(body):
    return {role["name"] for role in body["token"]["roles"]}


def test_a_project_scoped_token_validates_itself(keystone):
    token, issued = token_for(keystone, "alpha-member")
    status, body = validate_token(keystone.url, token)
    assert status == 200, body
    assert body["token"]["project"]["id"] == issued["token"]["project"]["id"]
    assert "member" in role_names(body)
    expires_at = datetime.strptime(body["token"]["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert expires_at.replace(tzinfo=timezone.utc) > datetime.now(timezone.utc)


def test_the_service_user_validates_another_users_token(keystone):
    service_token, _ = token_for(keystone, SERVICE_USER.name)
    token, _ = token_for(keystone, "beta-member")
    status, body = validate_token(keystone.url, service_token, subject_token=token)
    assert status == 200, body
    assert body["token"]["project"]["name"] == "beta"


def test_a_revoked_token_is_not_found(keystone):
    service_token, _ = token_for(keystone, SERVICE_USER.name)
    token, _ = token_for(keystone, "alpha-reader")
    revoke(keystone.url, token)
    assert validate_token(keystone.url, service_token, subject_token=token)[0] == 404
    # Validating itself, a revoked token does not even authenticate.
    assert validate_token(keystone.url, token)[0] == 401


@pytest.mark.parametrize("name, project, role, not_role", [
    ("alpha-member", "alpha", "member", "admin"),
    ("alpha-reader", "alpha", "reader", "member"),
    ("beta-member", "beta", "member", "admin"),
])
def test_seeded_users_have_their_project_and_role(keystone, name, project, role, not_role):
    _, body = token_for(keystone, name)
    assert body["token"]["project"]["name"] == project
    assert role in role_names(body)
    assert not_role not in role_names(body)


def test_the_admin_is_admin_on_alpha_too(keystone):
    admin = USERS["admin"]
    _, body = issue_token(keystone.url, admin.name, admin.password, "alpha")
    assert body["token"]["project"]["name"] == "alpha"
    assert "admin" in role_names(body)


def test_a_user_cannot_scope_to_another_project(keystone):
    member = USERS["alpha-member"]
    with pytest.raises(KeystoneError) as refused:
        issue_token(keystone.url, member.name, member.password, "beta")
    assert refused.value.status == 401


def test_the_catalog_lists_the_messaging_endpoint(keystone):
    register_messaging_endpoint(keystone, "http://127.0.0.1:1/old")
    register_messaging_endpoint(keystone, "http://127.0.0.1:8888")
    _, body = token_for(keystone, "alpha-member")
    catalog = {service["type"]: service for service in body["token"]["catalog"]}
    assert [(endpoint["interface"], endpoint["url"])
            for endpoint in catalog["messaging"]["endpoints"]] == [
        ("public", "http://127.0.0.1:8888")]
    assert catalog["identity"]["endpoints"][0]["url"] == keystone.url
