"""Request-target normalisation: one path, decided on and forwarded; ambiguity refused."""

from __future__ import annotations

import contextlib
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import BadTarget
from gateway.target import RequestTarget, normalise_path, parse_target
from gateway.translate import status_of
from tests.support.lenient import lenient_resolve

NORMALISED = [
    # (raw target, forwarded target, decoded path)
    ("/", "/", "/"),
    ("/a/b?x=1", "/a/b?x=1", "/a/b"),
    ("/oauth2/../secret.txt", "/secret.txt", "/secret.txt"),
    ("/public/../secret.txt", "/secret.txt", "/secret.txt"),
    ("/public/./../secret.txt", "/secret.txt", "/secret.txt"),
    ("/..", "/", "/"),
    ("/../../etc/passwd", "/etc/passwd", "/etc/passwd"),
    ("/a/b/..", "/a/", "/a/"),
    ("/a/./b/.", "/a/b/", "/a/b/"),
    ("/a/..", "/", "/"),
    ("//evil.example/x", "/evil.example/x", "/evil.example/x"),
    ("/a//b/../c", "/a/c", "/a/c"),
    ("/a///", "/a/", "/a/"),
    ("/%7e%41%61%2D%5f%2e", "/~Aa-_.", "/~Aa-_."),
    ("/caf%c3%a9", "/caf%C3%A9", "/café"),
    ("/file%2etxt", "/file.txt", "/file.txt"),
    ("/x/\"<>{}|^`[]", "/x/%22%3C%3E%7B%7D%7C%5E%60%5B%5D", "/x/\"<>{}|^`[]"),
    ("/100%25", "/100%25", "/100%"),
    ("/a;jsessionid=1/b", "/a;jsessionid=1/b", "/a;jsessionid=1/b"),
    ("/a?x=%2e%2e/../#", None, None),  # a fragment is refused, even after the query
    ("/q?x=%2e%2e/../", "/q?x=%2e%2e/../", "/q"),
    ("/q?", "/q?", "/q"),
    ("http://other:99/a/../b?x=1", "/b?x=1", "/b"),
    ("HTTPS://Other.Example", "/", "/"),
    ("http://h?x", "/?x", "/"),
    ("/a/.../b", "/a/.../b", "/a/.../b"),
    ("/a/.b/..c", "/a/.b/..c", "/a/.b/..c"),
]

REFUSED = [
    # (raw target, BadTarget.detail)
    ("/oauth2/%2e%2e/secret.txt", "ambiguous_dot_segment"),
    ("/public/%2E%2E/secret.txt", "ambiguous_dot_segment"),
    ("/public/.%2e/secret.txt", "ambiguous_dot_segment"),
    ("/public/%2e/secret.txt", "ambiguous_dot_segment"),
    ("/public/..;/secret.txt", "ambiguous_dot_segment"),
    ("/public/..;x=1/secret.txt", "ambiguous_dot_segment"),
    ("/public/.;/secret.txt", "ambiguous_dot_segment"),
    ("/public/..%3B/secret.txt", "ambiguous_dot_segment"),
    ("/public/..%20/secret.txt", "ambiguous_dot_segment"),
    ("/public%2F..%2Fsecret.txt", "encoded_slash"),
    ("/public/..%2fsecret.txt", "encoded_slash"),
    ("/public/..%5csecret.txt", "encoded_slash"),
    ("/public/%252e%252e/secret.txt", "double_encoding"),
    ("/public%252F..%252Fsecret.txt", "double_encoding"),
    ("/public/..\\secret.txt", "backslash"),
    ("/\\evil.example/x", "backslash"),
    ("/a%00b", "control_character"),
    ("/a%0d%0aSet-Cookie:x", "control_character"),
    ("/a%7Fb", "control_character"),
    ("/public/..%c0%afsecret.txt", "overlong_utf8"),
    ("/public/..%e0%80%afsecret.txt", "overlong_utf8"),
    ("/public/%c0%ae%c0%ae/secret.txt", "overlong_utf8"),
    ("/public/..%ef%bc%8fsecret.txt", "confusable_delimiter"),
    ("/public/%ef%bc%8e%ef%bc%8e/secret.txt", "confusable_delimiter"),
    ("/public/%e2%80%a5/secret.txt", "confusable_delimiter"),
    ("/public/..%u002fsecret.txt", "malformed_encoding"),
    ("/%zz", "malformed_encoding"),
    ("/%4", "malformed_encoding"),
    ("/a#frag", "fragment"),
    ("*", "unsupported_form"),
    ("other:443", "unsupported_form"),
    ("a/b", "unsupported_form"),
    ("ftp://host/x", "unsupported_scheme"),
]


class TestParseTarget:
    @pytest.mark.parametrize(("raw", "forwarded", "decoded"), NORMALISED,
                             ids=[c[0] for c in NORMALISED])
    def test_normalises_to_one_path(self, raw: str, forwarded: str | None,
                                    decoded: str | None) -> None:
        """The forwarded target and the decided-on path are the normal form of the raw one."""
        if forwarded is None:
            with pytest.raises(BadTarget):
                parse_target(raw)
            return
        target = parse_target(raw)
        assert target.forwarded == forwarded
        assert target.decoded == decoded

    @pytest.mark.parametrize(("raw", "detail"), REFUSED, ids=[c[0] for c in REFUSED])
    def test_refuses_what_servers_read_differently(self, raw: str, detail: str) -> None:
        """An ambiguous or malformed target raises BadTarget naming its class."""
        with pytest.raises(BadTarget) as caught:
            parse_target(raw)
        assert caught.value.detail == detail
        assert status_of(caught.value) == (400, "bad_target")

    @pytest.mark.parametrize(("raw", "readings"), [
        ("/a/b", ["/a/b"]),
        ("/a;x/b", ["/a;x/b", "/a/b"]),
        ("/oauth2;x/sign_in", ["/oauth2;x/sign_in", "/oauth2/sign_in"]),
        ("/;x/admin/", ["/;x/admin/", "/admin/"]),
    ])
    def test_readings_include_the_path_without_parameters(
            self, raw: str, readings: list[str]) -> None:
        """A path with `;params` has a second reading: the one Tomcat-like servers route on."""
        assert [r.path for r in parse_target(raw).readings] == readings

    def test_query_is_kept_byte_exact(self) -> None:
        """Nothing in the query is decoded, re-encoded or reordered."""
        raw = "/p?b=%2F%2e%2E&a=1&&c=%zz;d+e"
        assert parse_target(raw).query == "b=%2F%2e%2E&a=1&&c=%zz;d+e"


# --- properties ---------------------------------------------------------------------------

PATH_ALPHABET = st.sampled_from(
    ["/", ".", "..", "%2e", "%2E", "%2f", "%5c", "%25", "%00", "%41", "%c3%a9", "%3b", "%20",
     ";", "a", "b", "~", "-", "\\", "%", "x=1", "//", "?", "#", "\"", "@", ":", "%c0%af",
     "%ef%bc%8f", "%e2%80%a5", "%ff", "%c3"])


def strip_trailing_slash(path: str) -> str:
    return path.rstrip("/") or "/"


class TestProperties:
    @given(st.text(max_size=60))
    @settings(max_examples=500)
    def test_any_text_is_normalised_or_refused_with_bad_target(self, raw: str) -> None:
        """No input raises anything but BadTarget."""
        with contextlib.suppress(BadTarget):
            parse_target(raw)

    @given(st.lists(PATH_ALPHABET, max_size=14).map(lambda parts: "/" + "".join(parts)))
    @settings(max_examples=600)
    def test_forwarded_path_resolves_to_a_reading_that_was_decided_on(self, raw: str) -> None:
        """However leniently the upstream reads the forwarded path, it lands on a reading the
        gateway decided on; and the normal form is stable and free of ambiguity."""
        try:
            target = parse_target(raw)
        except BadTarget:
            return
        decided = {unicodedata.normalize("NFKC", strip_trailing_slash(r.decoded))
                   for r in target.readings}
        assert strip_trailing_slash(lenient_resolve(target.path)) in decided
        assert parse_target(target.forwarded) == target
        assert "//" not in target.path
        assert "\\" not in target.path
        assert target.path.isascii()
        segments = target.path.split("/")
        assert "." not in segments
        assert ".." not in segments
        assert "%2F" not in target.path.upper()
        assert "%5C" not in target.path.upper()

    @given(st.text(alphabet=st.characters(codec="ascii"), max_size=40))
    @settings(max_examples=500)
    def test_normalising_twice_changes_nothing(self, raw: str) -> None:
        """normalise_path is idempotent on everything it accepts."""
        try:
            once = normalise_path("/" + raw)
        except BadTarget:
            return
        assert normalise_path(once) == once

    def test_decoded_paths_of_distinct_targets_differ(self) -> None:
        """Bytes that are not UTF-8 decode to distinct strings (no two paths collide)."""
        assert RequestTarget("/%FF").decoded != RequestTarget("/%FE").decoded
