"""Checks of chalicelib.validation that the HTTP tests cannot reach: inputs
API Gateway would decode first, the client-id mode "off", and the shared
parameter and JSON rules every transport relies on."""
import pytest

from chalicelib.auth import context_for, noauth
from chalicelib.config import Settings
from chalicelib.errors import BadRequest, InvalidBody, InvalidParameter
from chalicelib.validation import (
    check_client_id,
    check_queue_name,
    param_bool,
    param_int,
    param_list,
    param_text,
    parse_json,
    validate,
)

DEFAULTS = Settings()


@pytest.mark.parametrize("name", ["a", "a.b", "A-z_0.9", "q" * 64, "...", ".a", "a.."])
def test_queue_names_zaqar_accepts(name):
    check_queue_name(name)


@pytest.mark.parametrize("name", ["", "q" * 65, "a\n", "a b", "a/b", "é", "ｑ", "a*",
                                  ".", ".."])
def test_queue_names_zaqar_rejects(name):
    with pytest.raises(BadRequest) as caught:
        check_queue_name(name)
    assert caught.value.body() == {
        "title": "Invalid queue identification",
        "description": "The format of the submitted queue name or project id is not valid."}


def test_client_id_off_mode_checks_length_only():
    settings = Settings(client_id_uuid_safe="off")
    check_client_id("x" * 10, settings)
    check_client_id("x" * 36, settings)
    for bad in ("x" * 9, "x" * 37):
        with pytest.raises(BadRequest) as caught:
            check_client_id(bad, settings)
        assert caught.value.body() == {
            "title": "Length of client id must be at least 10 and no greater than 36."}


def test_empty_client_id_is_malformed_not_missing():
    with pytest.raises(BadRequest) as caught:
        check_client_id("", DEFAULTS)
    assert caught.value.title == "Wrong UUID value"


def test_context_reads_roles_and_project_alias():
    headers = {"client-id": "3381af922b9e11e3b19171861300734c",
               "x-tenant": "p1", "x-roles": "member, admin,"}
    ctx = context_for(headers, noauth.authenticate(headers, DEFAULTS), DEFAULTS)
    assert (ctx.project, ctx.roles) == ("p1", frozenset({"member", "admin"}))


@pytest.mark.parametrize("word,value", [
    ("true", True), ("True", True), ("t", True), ("yes", True), ("y", True),
    ("1", True), ("on", True), ("false", False), ("False", False), ("f", False),
    ("no", False), ("n", False), ("0", False), ("off", False)])
def test_bool_parameter_words(word, value):
    assert param_bool({"echo": word}, "echo") is value


@pytest.mark.parametrize("word", ["TRUE", "Yes", "maybe", " true"])
def test_bool_parameter_rejects_other_words(word):
    with pytest.raises(InvalidParameter) as caught:
        param_bool({"echo": word}, "echo")
    assert caught.value.body() == {
        "title": "Invalid parameter",
        "description": 'The "echo" parameter is invalid. '
                       'The value of the parameter must be "true" or "false".'}


def test_int_parameter():
    assert param_int({"limit": ["3", "7"]}, "limit") == 7
    assert param_int({"limit": ""}, "limit", default=10) == 10
    with pytest.raises(InvalidParameter) as caught:
        param_int({"limit": "ten"}, "limit")
    assert caught.value.description == (
        'The "limit" parameter is invalid. The value must be an integer.')


def test_text_and_list_parameters():
    assert param_text({"marker": ["a", "b"]}, "marker") == "b"
    assert param_text({"marker": ""}, "marker") is None
    assert param_list({"ids": ["a,b", " ,c"]}, "ids") == ["a", "b", "c"]
    assert param_list({"ids": ","}, "ids") is None


@pytest.mark.parametrize("raw", ["{", '"text"', "12", "null", b"\xff", '{"a": NaN}',
                                 '{"a": Infinity}', '{"a": 1e400}'])
def test_json_that_is_no_document(raw):
    with pytest.raises(InvalidBody) as caught:
        parse_json(raw)
    assert caught.value.description == "Request body could not be parsed."


@pytest.mark.parametrize("number", [2 ** 63, -2 ** 63 - 1])
def test_json_integer_beyond_int64(number):
    with pytest.raises(InvalidBody) as caught:
        parse_json(f'{{"a": {number}}}')
    assert caught.value.description == "JSON contains integer that is too large."


def test_json_body_presence():
    assert parse_json("", required=False) is None
    assert parse_json('{"a": [2, 1.5]}') == {"a": [2, 1.5]}
    with pytest.raises(InvalidBody) as caught:
        parse_json(b"")
    assert caught.value.description == "Request body can not be empty"


def test_schema_integers_are_python_ints():
    validate("queue_metadata", {"_max_claim_count": 3}, DEFAULTS)
    with pytest.raises(BadRequest) as caught:
        validate("queue_metadata", {"_max_claim_count": 3.0}, DEFAULTS)
    assert caught.value.description == "_max_claim_count must be integer."


def test_schema_limits_follow_settings():
    settings = Settings(max_message_delay=30)
    with pytest.raises(InvalidBody) as caught:
        validate("queue_metadata", {"_default_message_delay": 31}, settings,
                 error=InvalidBody)
    assert caught.value.body() == {
        "title": "Invalid request body",
        "description": "The TTL can not exceed 30 seconds, and must be at least 0 seconds long."}
