"""The page a person sees when a rule refuses them: who, what was required, a way out; nothing
unescaped."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.pages import access_denied_page, requirement_lines

HOSTILE = '<script>alert("x")</script>'


def page_text(**overrides: Any) -> str:
    arguments: dict[str, Any] = {
        "username": "alice", "groups": ("staff",), "signed_in_with": "session",
        "required": {"groups": ["admins"]}, "request_id": "req-1", "return_to": "/admin/x"}
    response = access_denied_page(403, **{**arguments, **overrides})
    assert response.status == 403
    assert response.text is not None
    return response.text


@pytest.mark.parametrize("overrides", [
    pytest.param({"username": HOSTILE}, id="username"),
    pytest.param({"groups": (HOSTILE,)}, id="group"),
    pytest.param({"required": {"groups": [HOSTILE]}}, id="required-group"),
    pytest.param({"required": {"claims": {HOSTILE: [HOSTILE]}}}, id="claim"),
    pytest.param({"request_id": HOSTILE}, id="request-id"),
    pytest.param({"return_to": '/x"><script>alert(1)</script>'}, id="return-path"),
])
def test_nothing_reaches_the_page_unescaped(overrides: dict[str, Any]) -> None:
    """Every value on the page is escaped: no markup from a user, a token or the config."""
    text = page_text(**overrides)
    assert "<script>" not in text
    assert "&lt;script&gt;" in text or "%3Cscript%3E" in text


def test_the_page_says_who_what_and_offers_a_sign_out() -> None:
    """The page names the user and their groups, what the page requires, a sign-out form
    that comes back to the refused path, and the request id."""
    text = page_text()
    assert "You are signed in as <strong>alice</strong> (groups: <code>staff</code>)" in text
    assert "membership of one of the groups <code>admins</code>" in text
    assert '<form method="post" action="/oauth2/sign_out?rd=/admin/x">' in text
    assert "<code>req-1</code>" in text


@pytest.mark.parametrize(("signed_in_with", "username", "who", "sign_out"), [
    pytest.param("bearer", "alice", "with an access token of <strong>alice</strong>", False,
                 id="bearer-has-nothing-to-sign-out"),
    pytest.param(None, None, "You are not signed in.", False, id="nobody"),
])
def test_only_a_session_gets_a_sign_out_button(signed_in_with: str | None,
                                               username: str | None, who: str,
                                               sign_out: bool) -> None:
    """A bearer token or nobody has no session to sign out of."""
    text = page_text(signed_in_with=signed_in_with, username=username)
    assert who in text
    assert ("/oauth2/sign_out" in text) is sign_out


@pytest.mark.parametrize(("required", "lines"), [
    pytest.param({"action": "deny"}, ["nobody: this path is closed to everyone"], id="deny"),
    pytest.param({}, ["a signed-in user"], id="anyone-signed-in"),
    pytest.param({"scopes": ["a", "b"], "principal": "bearer"},
                 ["an access token with all of the scopes <code>a</code>, <code>b</code>",
                  "an API access token (Authorization: Bearer)"], id="scopes-and-bearer"),
    pytest.param({"principal": "session", "claims": {"custom:tenant": ["acme", "beta"]}},
                 ["a browser sign-in (a session)",
                  "the claim <code>custom:tenant</code> equal to one of <code>acme</code>, "
                  "<code>beta</code>"], id="session-and-claims"),
])
def test_requirements_are_listed_in_words(required: dict[str, Any], lines: list[str]) -> None:
    """Each requirement of the deciding rule is one line in plain words."""
    assert requirement_lines(required) == lines
