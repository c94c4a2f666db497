"""A scripted, non-JavaScript browser on aiohttp for end-to-end sign-in tests.

:class:`ScriptedBrowser` keeps a real cookie jar (``CookieJar(unsafe=True)``, so cookies set by
servers on ``127.0.0.1`` are stored and sent back), follows redirects one hop at a time while
recording every hop in :attr:`ScriptedBrowser.history`, and can fill in the sign-in and consent
forms of an identity provider: npm ``oidc-provider``'s interaction pages as well as a
Cognito-hosted-UI-like ``cognitoSignInForm``. HTML is read with the standard library's
:mod:`html.parser`; no JavaScript runs, so pages that need it must offer a plain form.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Final, Self

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

if TYPE_CHECKING:
    from http.cookies import BaseCookie
    from types import TracebackType

__all__ = [
    "NAVIGATION_HEADERS",
    "Form",
    "FormField",
    "Hop",
    "Page",
    "ScriptedBrowser",
    "SignInError",
    "TooManyRedirectsError",
    "parse_forms",
]

NAVIGATION_HEADERS: Final[Mapping[str, str]] = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "en-US,en;q=0.9",
    "User-Agent": (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "cognito-gateway-tests ScriptedBrowser/1.0"
    ),
}
"""Headers sent on every navigation unless the caller overrides them, as a browser would."""

REDIRECT_STATUSES: Final[frozenset[int]] = frozenset({301, 302, 303, 307, 308})
USERNAME_FIELD_NAMES: Final[tuple[str, ...]] = ("username", "login", "email")
REFUSAL_WORDS: Final[tuple[str, ...]] = ("abort", "deny", "cancel", "reject", "decline")
CONSENT_HINTS: Final[tuple[str, ...]] = ("consent", "interaction", "authorize", "oauth2")
_TEXT_INPUT_TYPES: Final[frozenset[str]] = frozenset({"text", "email", ""})
_BUTTON_INPUT_TYPES: Final[frozenset[str]] = frozenset({"submit", "image"})


class TooManyRedirectsError(RuntimeError):
    """Raised when a navigation needs more hops than the browser's ``max_hops``."""


class SignInError(RuntimeError):
    """Raised by :meth:`ScriptedBrowser.sign_in` when it cannot get past the sign-in pages.

    ``page`` is the page the browser was on, e.g. the login form shown again after a wrong
    password, so a test can assert on the provider's error message.
    """

    def __init__(self, message: str, page: Page) -> None:
        super().__init__(f"{message} (at {page.url}, status {page.status})")
        self.page = page


@dataclass(frozen=True)
class Hop:
    """One HTTP exchange of a navigation: request method and URL, response status and Location.

    ``set_cookies`` holds the raw ``Set-Cookie`` header values of that response, in order.
    """

    method: str
    url: str
    status: int
    location: str | None
    set_cookies: tuple[str, ...] = ()


@dataclass
class Page:
    """The final, non-redirect response of a navigation.

    ``url`` is where the browser ended up, ``hops`` every exchange that led there (the last one
    is this response itself).
    """

    url: str
    status: int
    headers: CIMultiDictProxy[str]
    text: str
    hops: list[Hop] = field(default_factory=list)

    def forms(self) -> list[Form]:
        """Return the page's forms in document order, actions resolved against :attr:`url`."""
        return parse_forms(self.text, self.url)

    def login_form(self) -> Form | None:
        """Return the first form with a password field, or ``None``."""
        return next((form for form in self.forms() if form.has_password), None)

    def consent_form(self) -> Form | None:
        """Return the form that grants consent on an authorization page, or ``None``.

        That is a POST form without a password field that is not itself a refusal (its name, id
        or action does not say abort/deny/cancel/...), that has a submit button which is not a
        refusal either (or no button at all), and whose page URL or action mentions
        consent/interaction/authorize/oauth2 or whose accepting button is named ``consent``.
        """
        for form in self.forms():
            if form.method != "POST" or form.has_password or form.is_refusal:
                continue
            buttons = form.buttons()
            button = form.accept_button()
            if buttons and button is None:
                continue
            haystack = f"{self.url} {form.action}".lower()
            named_consent = button is not None and (button.name or "").lower() == "consent"
            if named_consent or any(hint in haystack for hint in CONSENT_HINTS):
                return form
        return None

    def auto_submit_form(self) -> Form | None:
        """Return a form a script would submit on load (e.g. ``response_mode=form_post``).

        Recognised as a POST form holding only hidden inputs (plus buttons) on a page whose
        text calls ``.submit()``; ``None`` otherwise.
        """
        if ".submit()" not in self.text:
            return None
        for form in self.forms():
            inputs = [f for f in form.fields if not f.is_button]
            if form.method == "POST" and inputs and all(f.type == "hidden" for f in inputs):
                return form
        return None

    def json(self) -> object:
        """Decode :attr:`text` as JSON."""
        import json

        return json.loads(self.text)


@dataclass(frozen=True)
class FormField:
    """One form control: ``tag`` is input/button/select/textarea, ``type`` lowercased."""

    tag: str
    name: str | None
    type: str
    value: str
    checked: bool = False
    disabled: bool = False

    @property
    def is_button(self) -> bool:
        """Whether this control submits the form (submit/image inputs, submit buttons)."""
        if self.tag == "button":
            return self.type == "submit"
        return self.tag == "input" and self.type in _BUTTON_INPUT_TYPES

    @property
    def is_refusal(self) -> bool:
        """Whether the control's name or value says abort/deny/cancel/reject/decline."""
        words = f"{self.name or ''} {self.value}".lower()
        return any(word in words for word in REFUSAL_WORDS)


@dataclass
class Form:
    """A parsed HTML form; ``action`` is absolute, ``method`` upper-case."""

    action: str
    method: str
    name: str | None = None
    id: str | None = None
    fields: list[FormField] = field(default_factory=list)

    @property
    def has_password(self) -> bool:
        """Whether the form has an ``<input type="password">``."""
        return any(f.tag == "input" and f.type == "password" for f in self.fields)

    @property
    def is_refusal(self) -> bool:
        """Whether the form's name, id or action path says abort/deny/cancel/reject/decline."""
        words = f"{self.name or ''} {self.id or ''} {URL(self.action).path}".lower()
        return any(word in words for word in REFUSAL_WORDS)

    def buttons(self) -> list[FormField]:
        """Return the form's submit buttons in document order."""
        return [f for f in self.fields if f.is_button and not f.disabled]

    def accept_button(self) -> FormField | None:
        """Return the first submit button that is not a refusal, or ``None``."""
        return next((b for b in self.buttons() if not b.is_refusal), None)

    def field(self, name: str) -> FormField | None:
        """Return the first control called ``name`` (case-sensitive), or ``None``."""
        return next((f for f in self.fields if f.name == name), None)

    def values(self) -> list[tuple[str, str]]:
        """Return the name/value pairs a browser would submit, without any button's pair.

        Disabled controls, unnamed controls, buttons and unchecked checkboxes/radios are left
        out; everything else, hidden inputs included, is kept as it is in the page.
        """
        pairs: list[tuple[str, str]] = []
        for f in self.fields:
            if f.name is None or f.disabled or f.is_button or f.tag == "button":
                continue
            if f.type in {"checkbox", "radio"} and not f.checked:
                continue
            if f.tag == "input" and f.type in {"reset", "file"}:
                continue
            pairs.append((f.name, f.value))
        return pairs


class _FormParser(HTMLParser):
    """Collects forms and their controls, honouring the HTML5 ``form="id"`` attribute."""

    def __init__(self, base_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base_url = URL(base_url)
        self.forms: list[Form] = []
        self._current: Form | None = None
        self._by_id: dict[str, Form] = {}
        self._orphans: list[tuple[str, FormField]] = []
        self._text_target: tuple[str, dict[str, str | None], Form | None] | None = None
        self._text: list[str] = []
        self._select: tuple[dict[str, str | None], Form | None, str | None] | None = None
        self._select_first: str | None = None
        self._option: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "form":
            action = attr.get("action") or ""
            resolved = self.base_url.join(URL(action, encoded=True)) if action else self.base_url
            form = Form(
                action=str(resolved.with_fragment(None)),
                method=(attr.get("method") or "GET").upper(),
                name=attr.get("name"),
                id=attr.get("id"),
            )
            self.forms.append(form)
            if form.id:
                self._by_id[form.id] = form
            self._current = form
        elif tag == "input":
            self._add(
                attr,
                FormField(
                    tag="input",
                    name=attr.get("name"),
                    type=(attr.get("type") or "text").lower(),
                    value=attr.get("value")
                    or ("on" if (attr.get("type") or "").lower() in {"checkbox", "radio"} else ""),
                    checked="checked" in attr,
                    disabled="disabled" in attr,
                ),
            )
        elif tag in {"button", "textarea"}:
            self._text_target = (tag, attr, self._current)
            self._text = []
        elif tag == "select":
            self._select = (attr, self._current, None)
            self._select_first = None
        elif tag == "option" and self._select is not None:
            self._option = attr
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._text_target is not None or self._option is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None
        elif tag in {"button", "textarea"} and self._text_target is not None:
            _, attr, _form = self._text_target
            text = "".join(self._text)
            if tag == "button":
                value = attr.get("value") or ""
                kind = (attr.get("type") or "submit").lower()
            else:
                value = text
                kind = "textarea"
            self._add(
                attr,
                FormField(
                    tag=tag,
                    name=attr.get("name"),
                    type=kind,
                    value=value,
                    disabled="disabled" in attr,
                ),
                owner=_form,
            )
            self._text_target = None
        elif tag == "option" and self._option is not None and self._select is not None:
            option_value = self._option.get("value")
            value = option_value if option_value is not None else "".join(self._text).strip()
            attr, owner, selected = self._select
            if self._select_first is None:
                self._select_first = value
            if "selected" in self._option and selected is None:
                self._select = (attr, owner, value)
            self._option = None
        elif tag == "select" and self._select is not None:
            attr, owner, selected = self._select
            value = selected if selected is not None else (self._select_first or "")
            self._add(
                attr,
                FormField(
                    tag="select",
                    name=attr.get("name"),
                    type="select",
                    value=value,
                    disabled="disabled" in attr,
                ),
                owner=owner,
            )
            self._select = None

    def _add(
        self,
        attr: Mapping[str, str | None],
        control: FormField,
        owner: Form | None = None,
    ) -> None:
        form_id = attr.get("form")
        if form_id:
            self._orphans.append((form_id, control))
            return
        target = owner if owner is not None else self._current
        if target is not None:
            target.fields.append(control)

    def finish(self) -> list[Form]:
        """Attach controls that named their form by id, then return every form."""
        self.close()
        for form_id, control in self._orphans:
            form = self._by_id.get(form_id)
            if form is not None:
                form.fields.append(control)
        return self.forms


def parse_forms(html: str, base_url: str) -> list[Form]:
    """Parse every ``<form>`` of ``html``; relative actions are resolved against ``base_url``.

    A form without an action submits to ``base_url`` (fragment dropped). Controls outside a form
    that name one with ``form="id"`` belong to that form, after its own controls.
    """
    parser = _FormParser(base_url)
    parser.feed(html)
    return parser.finish()


class ScriptedBrowser:
    """A cookie-keeping HTTP client that navigates like a browser without running JavaScript.

    Use as ``async with ScriptedBrowser() as browser:``. Every navigation follows redirects
    manually (``allow_redirects=False`` per hop, at most ``max_hops`` hops, else
    :class:`TooManyRedirectsError`): 301/302/303 turn into a GET without body, 307/308 repeat
    the method and body. Every hop is appended to :attr:`history` and every raw ``Set-Cookie``
    value to :attr:`set_cookie_headers`. Requests carry :data:`NAVIGATION_HEADERS` unless
    overridden per call; form posts add ``Origin`` and ``Referer`` like a browser does.
    """

    def __init__(
        self,
        *,
        max_hops: int = 15,
        timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.max_hops = max_hops
        self.timeout = timeout
        self.default_headers: dict[str, str] = {**NAVIGATION_HEADERS, **(headers or {})}
        self.history: list[Hop] = []
        self.set_cookie_headers: list[str] = []
        self.jar = aiohttp.CookieJar(unsafe=True)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            cookie_jar=self.jar,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            auto_decompress=True,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the underlying client session; the browser cannot navigate afterwards."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The underlying :class:`aiohttp.ClientSession` (sharing the cookie jar)."""
        if self._session is None:
            raise RuntimeError("ScriptedBrowser is not open: use 'async with ScriptedBrowser()'")
        return self._session

    async def get(self, url: str | URL, headers: Mapping[str, str] | None = None) -> Page:
        """Navigate to ``url`` with GET, follow redirects, return the final page."""
        return await self.request("GET", url, headers=headers)

    async def follow(self, url: str | URL) -> Page:
        """Navigate to ``url`` (e.g. a Location a test read itself) and follow redirects."""
        return await self.request("GET", url)

    async def post(
        self,
        url: str | URL,
        data: Mapping[str, str] | Sequence[tuple[str, str]],
        headers: Mapping[str, str] | None = None,
    ) -> Page:
        """POST ``data`` form-encoded to ``url``, follow redirects, return the final page."""
        return await self.request("POST", url, data=data, headers=headers)

    async def request(
        self,
        method: str,
        url: str | URL,
        *,
        data: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        follow_redirects: bool = True,
    ) -> Page:
        """Send one request and (unless ``follow_redirects`` is false) follow its redirects.

        Returns the first response that is not a redirect (or has no ``Location``), or the
        first response at all when ``follow_redirects`` is false. Per-call ``headers`` override
        the browser's defaults on the first hop only; later hops use the defaults.
        """
        target = url if isinstance(url, URL) else URL(url)
        hops: list[Hop] = []
        body: list[tuple[str, str]] | None = None
        if data is not None:
            body = list(data.items()) if isinstance(data, Mapping) else list(data)
        extra: Mapping[str, str] = headers or {}
        while True:
            request_headers = CIMultiDict(self.default_headers)
            request_headers.update(extra)
            async with self.session.request(
                method,
                target.with_fragment(None),
                data=body,
                headers=request_headers,
                allow_redirects=False,
            ) as response:
                text = await response.text(errors="replace")
                set_cookies = tuple(response.headers.getall("Set-Cookie", ()))
                location = response.headers.get("Location")
                hop = Hop(method, str(target), response.status, location, set_cookies)
                self.set_cookie_headers.extend(set_cookies)
                self._expire_past_cookies(set_cookies, response.url)
                hops.append(hop)
                self.history.append(hop)
                if not follow_redirects or response.status not in REDIRECT_STATUSES or not location:
                    return Page(str(target), response.status, response.headers, text, hops)
            if len(hops) >= self.max_hops:
                raise TooManyRedirectsError(
                    f"more than {self.max_hops} redirects starting at {hops[0].url}: "
                    + " -> ".join(f"{h.status} {h.url}" for h in hops)
                )
            target = target.join(URL(location, encoded=True))
            if response.status in {301, 302, 303} and method != "HEAD":
                method, body = "GET", None
            extra = {}

    async def submit(
        self,
        page: Page,
        form: Form,
        values: Mapping[str, str] | None = None,
        button: FormField | None = None,
    ) -> Page:
        """Submit ``form`` of ``page`` as a browser would and follow redirects.

        The form's own values (hidden inputs included) are sent with ``values`` replacing
        controls of the same name (and appended when the form has none). ``button`` (default:
        the form's first non-refusal submit button) adds its name/value pair when it has a
        name. GET forms put the values in the query string.
        """
        overrides = dict(values or {})
        pairs: list[tuple[str, str]] = []
        for name, value in form.values():
            if name in overrides:
                pairs.append((name, overrides.pop(name)))
            else:
                pairs.append((name, value))
        pairs.extend(overrides.items())
        chosen = button if button is not None else form.accept_button()
        if chosen is not None and chosen.name:
            pairs.append((chosen.name, chosen.value))
        if form.method == "GET":
            return await self.get(URL(form.action).with_query(pairs))
        origin = URL(page.url).origin()
        headers = {"Origin": str(origin), "Referer": page.url}
        return await self.post(form.action, pairs, headers=headers)

    async def sign_in(
        self,
        start_url: str | URL,
        username: str,
        password: str,
        *,
        max_forms: int = 10,
    ) -> Page:
        """Open ``start_url`` and get through the sign-in pages; return the first other page.

        On each page: a form with a password field gets the username (into a field named
        ``username``, ``login`` or ``email``, else the first text input) and the password,
        with hidden inputs such as ``_csrf`` or ``cognitoAsfData`` kept as they are and the
        submit button's name/value added; a consent form (:meth:`Page.consent_form`) or a
        script-submitted form (:meth:`Page.auto_submit_form`) is submitted as it is. Refusal
        forms and buttons (abort/deny/cancel) are never used. Raises :class:`SignInError` when
        a login form comes back after the credentials were sent (wrong password) or after
        ``max_forms`` forms.
        """
        page = await self.get(start_url)
        sent_credentials = False
        for _ in range(max_forms):
            login = page.login_form()
            if login is not None:
                if sent_credentials:
                    raise SignInError("the sign-in form was shown again after signing in", page)
                page = await self.submit(page, login, _credentials(login, username, password))
                sent_credentials = True
                continue
            form = page.consent_form() or page.auto_submit_form()
            if form is None:
                return page
            page = await self.submit(page, form)
        raise SignInError(f"still on a form after {max_forms} submissions", page)

    async def sign_out(self, url: str | URL) -> Page:
        """Navigate to ``url`` and confirm a provider's logout page if one is shown.

        A logout confirmation is a POST form with a submit button named ``logout`` (as on
        oidc-provider's ``/session/end``) or whose name, id or action mentions logout; it is
        submitted with that button. Returns the final page.
        """
        page = await self.get(url)
        for form in page.forms():
            if form.method != "POST" or form.has_password:
                continue
            button = next((b for b in form.buttons() if (b.name or "").lower() == "logout"), None)
            words = f"{form.name or ''} {form.id or ''} {form.action}".lower()
            if button is not None or "logout" in words:
                return await self.submit(page, form, button=button or form.accept_button())
        return page

    def _expire_past_cookies(self, set_cookies: Sequence[str], response_url: URL) -> None:
        """Delete cookies whose ``Set-Cookie`` has an ``Expires`` in the past and no Max-Age.

        aiohttp's jar treats ``expires=Thu, 01 Jan 1970 00:00:00 GMT`` (epoch 0, falsy) as "no
        expiry" and keeps the emptied cookie, where a browser deletes it; Koa (oidc-provider)
        clears cookies exactly that way. The header is fed again with ``Max-Age=0``.
        """
        stale = [header for header in set_cookies if _expires_in_past(header)]
        if stale:
            self.jar.update_cookies_from_headers(
                [f"{header}; Max-Age=0" for header in stale], response_url
            )

    def cookies_for(self, url: str | URL) -> dict[str, str]:
        """Return the cookies the browser would send to ``url``, name to value."""
        target = url if isinstance(url, URL) else URL(url)
        jar: BaseCookie[str] = self.jar.filter_cookies(target)
        return {name: morsel.value for name, morsel in jar.items()}

    def set_cookie_headers_named(self, name: str) -> list[str]:
        """Return every raw ``Set-Cookie`` value seen so far that sets cookie ``name``."""
        return [h for h in self.set_cookie_headers if h.split("=", 1)[0].strip() == name]

    def clear_cookies(self) -> None:
        """Forget every cookie, as a new private window would."""
        self.jar.clear()


def _expires_in_past(header: str) -> bool:
    """Whether a raw ``Set-Cookie`` value has no Max-Age and an Expires date already past."""
    attributes = [part.strip() for part in header.split(";")[1:]]
    lowered = [part.lower() for part in attributes]
    if any(part.startswith("max-age") for part in lowered):
        return False
    for part, low in zip(attributes, lowered, strict=True):
        if low.startswith("expires="):
            date = part.split("=", 1)[1].strip()
            try:
                expires = parsedate_to_datetime(_DATE_DASHES.sub(" ", date))
            except (TypeError, ValueError):
                return False
            if expires.tzinfo is None:
                expires = expires.replace(tzinfo=UTC)
            return expires <= datetime.now(UTC)
    return False


_DATE_DASHES: Final = re.compile(r"(?<=\d)-(?=[A-Za-z])|(?<=[A-Za-z])-(?=\d)")


def _credentials(form: Form, username: str, password: str) -> dict[str, str]:
    """Map the login form's username and password fields to the given credentials."""
    values: dict[str, str] = {}
    names = {(f.name or "").lower(): f.name for f in form.fields if f.name}
    user_field = next((names[n] for n in USERNAME_FIELD_NAMES if n in names), None)
    if user_field is None:
        user_field = next(
            (
                f.name
                for f in form.fields
                if f.tag == "input" and f.type in _TEXT_INPUT_TYPES and f.name
            ),
            None,
        )
    if user_field is not None:
        values[user_field] = username
    password_field = next(
        (f.name for f in form.fields if f.tag == "input" and f.type == "password" and f.name),
        None,
    )
    if password_field is None:
        raise ValueError(f"the sign-in form posting to {form.action} has an unnamed password field")
    values[password_field] = password
    return values
