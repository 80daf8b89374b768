"""Users of the browser pages and the HTTP API, their API tokens and browser sessions.

Only digests are stored: a password's argon2id hash, a token's or session id's SHA-256
(cti_bridge.web.auth makes and checks them). The functions here never see a secret.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Literal

from cti_bridge.store.database import Database, Session

Role = Literal["agent", "supervisor", "admin"]
ROLES: tuple[Role, ...] = ("agent", "supervisor", "admin")

# A token's last use is written at most this often: a busy integration would otherwise turn
# every read it makes into a write.
_LAST_USED_PRECISION = 60.0


class UserError(Exception):
    """A user, token or session change that cannot be made (unknown user, taken name, ...)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class User:
    id: str
    name: str
    role: Role
    agent_id: str | None
    language: str | None
    disabled: bool
    created_at: float
    has_password: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiToken:
    id: int
    user_id: str
    label: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class WebSession:
    user: User
    csrf_token: str
    expires_at: float


_USER_COLUMNS = "u.id, u.name, u.role, u.agent_id, u.language, u.disabled, u.created_at, u.password_hash"


def _user(row: sqlite3.Row) -> User:
    return User(
        id=row["id"],
        name=row["name"],
        role=row["role"],
        agent_id=row["agent_id"],
        language=row["language"],
        disabled=bool(row["disabled"]),
        created_at=row["created_at"],
        has_password=row["password_hash"] is not None,
    )


def _token(row: sqlite3.Row) -> ApiToken:
    return ApiToken(
        id=row["id"],
        user_id=row["user_id"],
        label=row["label"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


async def add_user(
    db: Database,
    user_id: str,
    *,
    role: Role,
    name: str = "",
    agent_id: str | None = None,
    language: str | None = None,
    password_hash: str | None = None,
    at: float,
) -> User:
    async def write(tx: Session) -> User:
        if await tx.fetchone("SELECT 1 FROM users WHERE id = ?", (user_id,)) is not None:
            raise UserError(f"user {user_id!r} exists")
        await tx.execute(
            "INSERT INTO users (id, name, role, agent_id, language, password_hash, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (user_id, name, role, agent_id, language, password_hash, at),
        )
        row = await tx.fetchone(f"SELECT {_USER_COLUMNS} FROM users u WHERE id = ?", (user_id,))
        assert row is not None
        return _user(row)

    return await db.transaction(write)


async def update_user(
    db: Database,
    user_id: str,
    *,
    name: str | None = None,
    role: Role | None = None,
    agent_id: str | None = None,
    language: str | None = None,
    password_hash: str | None = None,
    disabled: bool | None = None,
) -> User:
    """Change the given attributes; a disabled user's sessions end at once."""
    changes = {
        "name": name,
        "role": role,
        "agent_id": agent_id,
        "language": language,
        "password_hash": password_hash,
        "disabled": None if disabled is None else int(disabled),
    }
    changes = {column: value for column, value in changes.items() if value is not None}

    async def write(tx: Session) -> User:
        if changes:
            assignments = ", ".join(f"{column} = ?" for column in changes)
            await tx.execute(f"UPDATE users SET {assignments} WHERE id = ?", (*changes.values(), user_id))
        row = await tx.fetchone(f"SELECT {_USER_COLUMNS} FROM users u WHERE id = ?", (user_id,))
        if row is None:
            raise UserError(f"no user {user_id!r}")
        if disabled or password_hash is not None:  # a new password signs everyone else out too
            await tx.execute("DELETE FROM web_sessions WHERE user_id = ?", (user_id,))
        return _user(row)

    return await db.transaction(write)


async def user(db: Database, user_id: str) -> User | None:
    row = await db.fetchone(f"SELECT {_USER_COLUMNS} FROM users u WHERE id = ?", (user_id,))
    return _user(row) if row is not None else None


async def users(db: Database) -> list[User]:
    return [_user(r) for r in await db.fetchall(f"SELECT {_USER_COLUMNS} FROM users u ORDER BY id")]


async def password_hash(db: Database, user_id: str) -> tuple[User, str] | None:
    """An enabled user with a password, and its hash: what a login checks against."""
    row = await db.fetchone(
        f"SELECT {_USER_COLUMNS} FROM users u WHERE id = ? AND NOT disabled AND password_hash IS NOT NULL",
        (user_id,),
    )
    return (_user(row), row["password_hash"]) if row is not None else None


# -- API tokens ---------------------------------------------------------------------------


async def add_token(db: Database, user_id: str, *, label: str, token_hash: str, at: float) -> ApiToken:
    async def write(tx: Session) -> ApiToken:
        if await tx.fetchone("SELECT 1 FROM users WHERE id = ?", (user_id,)) is None:
            raise UserError(f"no user {user_id!r}")
        row = await tx.fetchone(
            "INSERT INTO api_tokens (user_id, label, token_hash, created_at) VALUES (?, ?, ?, ?)"
            " RETURNING id, user_id, label, created_at, last_used_at, revoked_at",
            (user_id, label, token_hash, at),
        )
        assert row is not None
        return _token(row)

    return await db.transaction(write)


async def tokens(db: Database, user_id: str | None = None) -> list[ApiToken]:
    where, params = ("WHERE user_id = ?", (user_id,)) if user_id else ("", ())
    rows = await db.fetchall(
        "SELECT id, user_id, label, created_at, last_used_at, revoked_at"
        f" FROM api_tokens {where} ORDER BY id",
        params,
    )
    return [_token(r) for r in rows]


async def revoke_token(db: Database, token_id: int, *, at: float) -> ApiToken:
    async def write(tx: Session) -> ApiToken:
        await tx.execute(
            "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?", (at, token_id)
        )
        row = await tx.fetchone(
            "SELECT id, user_id, label, created_at, last_used_at, revoked_at FROM api_tokens WHERE id = ?",
            (token_id,),
        )
        if row is None:
            raise UserError(f"no token {token_id}")
        return _token(row)

    return await db.transaction(write)


async def token_user(db: Database, token_hash: str, *, at: float) -> User | None:
    """The enabled user a live token belongs to, noting its use."""

    async def write(tx: Session) -> User | None:
        row = await tx.fetchone(
            f"SELECT {_USER_COLUMNS}, t.id AS token_id, t.last_used_at FROM api_tokens t"
            " JOIN users u ON u.id = t.user_id"
            " WHERE t.token_hash = ? AND t.revoked_at IS NULL AND NOT u.disabled",
            (token_hash,),
        )
        if row is None:
            return None
        if row["last_used_at"] is None or at - row["last_used_at"] >= _LAST_USED_PRECISION:
            await tx.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (at, row["token_id"]))
        return _user(row)

    return await db.transaction(write)


# -- browser sessions -----------------------------------------------------------------------


async def open_session(
    db: Database, user_id: str, *, id_hash: str, csrf_token: str, at: float, expires_at: float
) -> None:
    async def write(tx: Session) -> None:
        # Expired sessions go when someone signs in: the table stays the size of a shift.
        await tx.execute("DELETE FROM web_sessions WHERE expires_at <= ?", (at,))
        await tx.execute(
            "INSERT INTO web_sessions (id_hash, user_id, csrf_token, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (id_hash, user_id, csrf_token, at, expires_at),
        )

    await db.transaction(write)


async def session(db: Database, id_hash: str, *, at: float) -> WebSession | None:
    row = await db.fetchone(
        f"SELECT {_USER_COLUMNS}, s.csrf_token, s.expires_at FROM web_sessions s"
        " JOIN users u ON u.id = s.user_id WHERE s.id_hash = ? AND s.expires_at > ? AND NOT u.disabled",
        (id_hash, at),
    )
    if row is None:
        return None
    return WebSession(user=_user(row), csrf_token=row["csrf_token"], expires_at=row["expires_at"])


async def close_session(db: Database, id_hash: str) -> None:
    await db.execute("DELETE FROM web_sessions WHERE id_hash = ?", (id_hash,))
