"""Who is asking: passwords, API tokens, browser sessions, and what a role may see.

Passwords are argon2id hashes (argon2-cffi's defaults, RFC 9106's second recommendation):
people choose guessable passwords, so a stolen table must be slow to try guesses against.
Tokens and session ids are 256 random bits made here; no guess can find them, so their
SHA-256 is enough and is checked on every request without argon2's deliberate cost.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

import argon2
import structlog

from cti_bridge.config import Config
from cti_bridge.store import logins as login_store
from cti_bridge.store.database import Database
from cti_bridge.store.users import User

log = structlog.get_logger(__name__)

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


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginThrottle:
    """Slows password guessing, without letting a guesser lock a real user out.

    Two sliding windows of `window` seconds, both counted before the password is checked (so
    attempts sent at once cannot all be checked before the first failure is noted): at most
    `per_address` checks for one user name from one client address, and `per_user` for the
    name from all addresses together. A guesser at one address is refused after
    `per_address`, while the user signs in from their own desk; a guesser with many
    addresses gets at most `per_user` guesses a window, and can keep the name locked only by
    going on sending them. An IPv6 client counts as its /64: one host has them all.
    Kept in the store, so a restart does not hand out a fresh allowance.
    """

    per_address: int = 10
    per_user: int = 100
    window: float = 300.0

    async def admit(self, db: Database, name: str, address: str | None, now: float) -> float:
        """Count an attempt to sign in as `name`; 0 to go on and check its password, else the
        seconds until one is let through."""
        where = client_address(address)
        admission = await login_store.admit(
            db,
            name.casefold(),
            where,
            at=now,
            window=self.window,
            per_address=self.per_address,
            per_user=self.per_user,
        )
        if admission.reached is not None:
            log.warning("web.sign_in_throttled", user=name, address=where, limit=admission.reached)
        return admission.retry_after

    async def succeeded(self, db: Database, name: str, address: str | None) -> None:
        await login_store.forget(db, name.casefold(), client_address(address))


def client_address(host: str | None) -> str:
    """The address a client is counted by: an IPv4 address, an IPv6 client's /64."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a test client's name, or a proxy's unix socket
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


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
