"""Test-only helpers: a scripted browser, headless Chromium and a real third-party OpenID provider.

Nothing here is imported by the gateway itself; the modules are:

* :mod:`tests.support.browser` -- :class:`~tests.support.browser.ScriptedBrowser`, a
  non-JavaScript browser on aiohttp that follows redirects hop by hop and fills sign-in and
  consent forms.
* :mod:`tests.support.chromium` -- headless Chromium through playwright, for tests that need a
  real browser engine.
* :mod:`tests.support.oidc_provider` -- npm's ``oidc-provider`` (pinned in
  ``tests/oidc_provider``) run as a subprocess on a free loopback port.
"""
