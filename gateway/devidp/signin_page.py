"""The HTML of the hosted UI's sign-in page and of the simulated providers' sign-in pages.

The sign-in page follows Cognito's classic hosted UI: a centred panel with the app client's
name in the banner, a "Sign in with <Provider>" button per external provider the client
supports, then the username and password form (`cognitoSignInForm`, with the classic field
names and `*-customizable` classes) when the client supports COGNITO. A simulated provider's
page looks deliberately different and says what it is. Self-contained: inline CSS only.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

_STYLE = """body{margin:0;background:#f2f3f3;font:14px/1.45 "Amazon Ember","Helvetica Neue",
Helvetica,Arial,sans-serif;color:#333}
.modal-content{width:340px;margin:48px auto 16px;background:#fff;border-radius:4px;
box-shadow:0 2px 10px rgba(0,0,0,.18);overflow:hidden}
.banner-customizable{background:#fafafa;border-bottom:1px solid #e5e5e5;padding:22px 24px;
text-align:center}
.app-name{font-size:20px;font-weight:500;color:#232f3e}
.modal-body{padding:20px 24px 24px}
.textDescription-customizable{display:block;margin:0 0 12px;color:#555}
.idpButton-customizable{display:block;box-sizing:border-box;width:100%;margin:0 0 8px;
padding:9px 12px;border-radius:3px;background:#337ab7;color:#fff;text-align:center;
text-decoration:none;font-weight:500}
.idpButton-customizable:hover{background:#286090}
.or{display:flex;align-items:center;gap:10px;margin:16px 0;color:#888;font-size:12px}
.or:before,.or:after{content:"";flex:1;border-top:1px solid #ddd}
label{display:block;margin:10px 0 4px;font-weight:500}
.inputField-customizable{box-sizing:border-box;width:100%;padding:8px 10px;font:inherit;
border:1px solid #ccc;border-radius:3px;background:#fff}
.inputField-customizable:focus{outline:none;border-color:#66afe9;
box-shadow:0 0 0 3px rgba(102,175,233,.3)}
.submitButton-customizable{width:100%;margin-top:18px;padding:9px;border:0;border-radius:3px;
background:#337ab7;color:#fff;font:inherit;font-weight:500;cursor:pointer}
.submitButton-customizable:hover{background:#286090}
.errorMessage{margin:0 0 8px;padding:8px 10px;border-radius:3px;background:#fdecea;
color:#c0392b}
.footnote{text-align:center;color:#888;font-size:12px}"""

_PROVIDER_STYLE = """body{margin:0;background:#ece8f5;font:15px/1.5 Georgia,"Times New Roman",
serif;color:#2d2440}
header{background:#3b2a63;color:#fff;padding:14px 28px;font-size:18px}
header small{opacity:.75;font-size:13px;margin-left:8px}
main{width:360px;margin:44px auto;background:#fff;border:1px solid #cfc6e4;padding:24px 28px}
.simulation{background:#fff6d6;border:1px solid #e8d48a;padding:8px 10px;font-size:13px}
label{display:block;margin:12px 0 4px}
input[type=text],input[type=password]{box-sizing:border-box;width:100%;padding:7px;
font:inherit;border:1px solid #a99cc8}
button{margin-top:18px;width:100%;padding:9px;background:#3b2a63;color:#fff;border:0;
font:inherit;cursor:pointer}
.error{color:#a4161a;margin:10px 0 0}"""


@dataclass(frozen=True)
class ProviderButton:
    """A "Sign in with <name>" button and the authorize URL it leads to."""

    name: str
    href: str


def sign_in_page(
    *,
    app_name: str,
    action: str | None,
    csrf: str,
    buttons: Sequence[ProviderButton],
    error: str | None,
) -> str:
    """The classic hosted-UI page. `action` is the form's /login URL, None when the client
    does not support COGNITO (then only the provider buttons are shown)."""
    parts = []
    if buttons:
        parts.append('<span class="textDescription-customizable">Sign in with your corporate ID'
                     "</span>")
        parts += [f'<a class="btn btn-primary idpButton-customizable" href="{escape(b.href)}">'
                  f"Sign in with {escape(b.name)}</a>" for b in buttons]
    if action is not None:
        if buttons:
            parts.append('<div class="or">or</div>')
        parts.append(_form(action, csrf, error))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Signin</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{_STYLE}</style></head>
<body><div class="modal-content background-customizable">
<div class="banner-customizable"><span class="app-name" id="appName">{escape(app_name)}</span>
</div><div class="modal-body">
{"".join(parts)}
</div></div>
<p class="footnote">Local Cognito stand-in (cognito-gateway dev-idp): not AWS.</p>
</body></html>
"""


def _form(action: str, csrf: str, error: str | None) -> str:
    message = (f'<p id="loginErrorMessage" class="errorMessage">{escape(error)}</p>\n'
               if error is not None else "")
    return f"""<span class="textDescription-customizable">Sign in with your username and password
</span>
<form name="cognitoSignInForm" method="post" action="{escape(action)}" class="cognito-asf">
<input type="hidden" name="_csrf" value="{escape(csrf)}"/>
{message}<label for="signInFormUsername" class="label-customizable">Username</label>
<input id="signInFormUsername" name="username" type="text" placeholder="Username"
 class="form-control inputField-customizable" autocapitalize="none" required/>
<label for="signInFormPassword" class="label-customizable">Password</label>
<input id="signInFormPassword" name="password" type="password" placeholder="Password"
 class="form-control inputField-customizable" required/>
<input type="hidden" name="cognitoAsfData" id="cognitoAsfData" value=""/>
<input name="signInSubmitButton" type="Submit" value="Sign in"
 class="btn btn-primary submitButton-customizable"/>
</form>"""


def provider_page(*, provider: str, provider_type: str, action: str, relay_state: str,
                  error: str | None) -> str:
    """The simulated external provider's own sign-in page."""
    message = f'<p class="error" id="providerError">{escape(error)}</p>' if error else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(provider)} sign-in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{_PROVIDER_STYLE}</style></head>
<body><header id="providerName">{escape(provider)}<small>{escape(provider_type)} identity
provider</small></header>
<main>
<p class="simulation">Simulated by the dev IdP: with real Cognito this is {escape(provider)}'s
own sign-in page, and the user pool receives its {escape(provider_type)} response.</p>
<form method="post" action="{escape(action)}" name="providerSignInForm">
<input type="hidden" name="RelayState" value="{escape(relay_state)}"/>
<label for="providerUserId">User ID</label>
<input id="providerUserId" name="user_id" type="text" autocapitalize="none" required/>
<label for="providerPassword">Password</label>
<input id="providerPassword" name="password" type="password" required/>
{message}<button type="submit" id="providerSubmit">Sign in to {escape(provider)}</button>
</form></main></body></html>
"""
