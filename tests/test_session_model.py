"""The session's refresh timing: when a refresh starts, and until when the session serves
without one (sessions/model.py), table-driven."""

from __future__ import annotations

import pytest

from gateway.identity import Identity
from gateway.sessions.model import Session

SIGNED_IN = 1000.0
TOKENS_END = 4600.0  # one-hour tokens


REFRESH_TOKEN = "rt"


def session(*, checked_at: float = SIGNED_IN, refresh_token: str | None = REFRESH_TOKEN,
            generation: int = 0) -> Session:
    return Session(sid="s", identity=Identity(sub="u", username="u"), created_at=SIGNED_IN,
                   expires_at=SIGNED_IN + 86400, tokens_expire_at=TOKENS_END,
                   refresh_token=refresh_token, checked_at=checked_at, generation=generation)


class TestRefreshTiming:
    @pytest.mark.parametrize(("before", "revalidate", "starts", "serves_until"), [
        pytest.param(120, 0, TOKENS_END - 120, TOKENS_END, id="tokens-only"),
        pytest.param(0, 0, TOKENS_END, TOKENS_END, id="no-margin"),
        pytest.param(120, 300, SIGNED_IN + 180, SIGNED_IN + 300, id="recheck-first"),
        pytest.param(120, 100, SIGNED_IN + 50, SIGNED_IN + 100,
                     id="recheck-margin-at-most-half-the-window"),
        pytest.param(120, 7200, TOKENS_END - 120, TOKENS_END, id="tokens-before-recheck"),
    ])
    def test_refresh_starts_before_the_session_stops_serving(
            self, before: float, revalidate: float, starts: float,
            serves_until: float) -> None:
        """A refresh starts `before` ahead of whichever comes first, token expiry or re-check."""
        s = session()
        assert s.refresh_starts_at(before, revalidate) == starts
        assert s.serves_until(revalidate) == serves_until
        assert s.refresh_starts_at(before, revalidate) <= s.serves_until(revalidate)

    @pytest.mark.parametrize(("now", "revalidate", "refresh_token", "usable"), [
        pytest.param(SIGNED_IN + 10, 0, REFRESH_TOKEN, True, id="fresh"),
        pytest.param(TOKENS_END - 0.001, 0, REFRESH_TOKEN, True, id="last-moment"),
        pytest.param(TOKENS_END, 0, REFRESH_TOKEN, False, id="tokens-expired"),
        pytest.param(SIGNED_IN + 299, 300, REFRESH_TOKEN, True, id="recheck-not-yet-due"),
        pytest.param(SIGNED_IN + 300, 300, REFRESH_TOKEN, False, id="recheck-overdue"),
        pytest.param(SIGNED_IN + 300, 300, None, True,
                     id="no-refresh-token-no-recheck-possible"),
    ])
    def test_usable_until_tokens_expire_or_the_recheck_is_overdue(
            self, now: float, revalidate: float, refresh_token: str | None,
            usable: bool) -> None:
        """A session serves without waiting while its tokens are valid and its re-check is not
        overdue; a session that cannot refresh is never held to a re-check."""
        assert session(refresh_token=refresh_token).usable(now, revalidate) is usable


class TestGenerations:
    def test_a_refresh_makes_the_next_generation(self) -> None:
        """with_tokens (a refresh) counts a generation; the session id stays."""
        first = session()
        second = first.with_tokens(tokens_expire_at=TOKENS_END + 3600)
        assert (second.sid, second.generation) == (first.sid, 1)
        assert second.with_tokens().generation == 2

    @pytest.mark.parametrize("generation", [0, 3], ids=["first", "refreshed"])
    def test_the_generation_survives_the_cookie(self, generation: int) -> None:
        """A session read back from its dict has the generation it was written with."""
        written = session(generation=generation)
        assert Session.from_dict(written.to_dict()) == written

    def test_a_cookie_from_before_generations_reads_as_the_first(self) -> None:
        """A cookie written before sessions had generations is generation 0."""
        data = session().to_dict()
        del data["generation"]
        assert Session.from_dict(data).generation == 0
