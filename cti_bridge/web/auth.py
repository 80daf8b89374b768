"""Who is asking: passwords, API tokens, browser sessions, and what a role may see.

Passwords are argon2id hashes (argon2-cffi's defaults, RFC 9106's second recommendation):
people choose guessable passwords, so a stolen table must be slow to try guesses against.
Tokens and session ids are 256 random bits made here; no guess can find them, so their
SHA-256 is enough and is checked on every request without argon2's deliberate cost.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

import argon2

from cti_bridge.config import Config
from cti_bridge.store.users import User

TOKEN_PREFIX = "ctb_"  # lets secret scanners and people tell a cti-bridge token apart

_hasher = argon2.PasswordHasher()
# Checked against when the user does not exist, so a login takes as long either way and does
# not tell which user names exist.
_DUMMY_HASH = _hasher.hash("not anybody's password")


async def hash_password(password: str) -> str:
    """argon2id takes ~50 ms of CPU by design: off the event loop."""
    return await asyncio.to_thread(_hasher.hash, password)


async def password_matches(password_hash: str | None, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
        except argon2.exceptions.VerificationError:
            return False
        except argon2.exceptions.InvalidHashError:
            return False

    return await asyncio.to_thread(verify)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class LoginThrottle:
    """Slows password guessing: after `limit` failed sign-ins for one user name within
    `window` seconds, that name is refused until the oldest of them is `window` old.

    Per name rather than per address: guesses come from many addresses, and a call centre's
    agents share one office address. Kept in memory; a restart forgets, which costs a
    guesser nothing they could not get by waiting.
    """

    def __init__(self, limit: int = 10, window: float = 300.0) -> None:
        self._limit = limit
        self._window = window
        self._failures: dict[str, collections.deque[float]] = {}

    def retry_after(self, name: str, now: float) -> float:
        """Seconds until `name` may try again (0: now)."""
        failures = self._recent(name, now)
        if len(failures) < self._limit:
            return 0.0
        return failures[0] + self._window - now

    def failed(self, name: str, now: float) -> None:
        self._recent(name, now).append(now)

    def succeeded(self, name: str) -> None:
        self._failures.pop(name.casefold(), None)

    def _recent(self, name: str, now: float) -> collections.deque[float]:
        failures = self._failures.setdefault(name.casefold(), collections.deque())
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        if len(self._failures) > 10_000:  # names tried once long ago: forget them
            self._failures = {k: v for k, v in self._failures.items() if v}
        return failures


@dataclass(frozen=True, slots=True)
class Teams:
    """Who works with whom, from the config: an agent sees the tickets of their team's agents."""

    team_of_agent: Mapping[str, str]
    agents_of_team: Mapping[str, frozenset[str]]

    @classmethod
    def from_config(cls, config: Config) -> Teams:
        team_of_agent = {a.id: a.team for a in config.agents if a.team is not None}
        members: dict[str, set[str]] = {}
        for agent, team in team_of_agent.items():
            members.setdefault(team, set()).add(agent)
        return cls(team_of_agent, {team: frozenset(ids) for team, ids in members.items()})

    def colleagues(self, agent_id: str) -> frozenset[str]:
        """The agent and the other agents of their team (an agent in no team: only themself)."""
        team = self.team_of_agent.get(agent_id)
        return self.agents_of_team.get(team, frozenset()) | {agent_id} if team else frozenset({agent_id})


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """The user behind a request and what they may see.

    `sees_agents` is None for supervisors and admins, who see every ticket; for an agent it
    is their team's agent ids (themself included).
    """

    user: User
    via: str  # "session" or "token"
    sees_agents: frozenset[str] | None
    team: str | None
    csrf_token: str | None = None  # a session's; requests by token need none

    @classmethod
    def of(cls, user: User, teams: Teams, *, via: str, csrf_token: str | None = None) -> Principal:
        if user.role == "agent":
            agent = user.agent_id or user.id
            return cls(
                user=user,
                via=via,
                sees_agents=teams.colleagues(agent),
                team=teams.team_of_agent.get(agent),
                csrf_token=csrf_token,
            )
        return cls(user=user, via=via, sees_agents=None, team=None, csrf_token=csrf_token)

    @property
    def agent_id(self) -> str | None:
        return (self.user.agent_id or self.user.id) if self.user.role == "agent" else None

    @property
    def is_supervisor(self) -> bool:
        return self.user.role in ("supervisor", "admin")
