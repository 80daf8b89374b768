"""Sign-in attempts counted per user name and client address: the login throttle's memory.

The policy (limits, window, what an address is) is cti_bridge.web.auth.LoginThrottle's; this
module only counts, in one transaction per attempt, so concurrent attempts are counted one
after another and none slips past a limit between the count and the insert.
"""

from __future__ import annotations

from dataclasses import dataclass

from cti_bridge.store.database import Database, Session


@dataclass(frozen=True, slots=True)
class Admission:
    """What became of one attempt: let through to the password check, or refused.

    `retry_after` is 0 for an attempt let through (and counted), else the seconds until the
    limit that refused it (`refused_by`: "address" or "user") lets the next one through.
    `reached` names the limit this attempt filled, if it was the last one it allowed.
    """

    retry_after: float
    refused_by: str | None = None
    reached: str | None = None


async def admit(
    db: Database,
    user_key: str,
    address: str,
    *,
    at: float,
    window: float,
    per_address: int,
    per_user: int,
) -> Admission:
    """Count an attempt unless `user_key` has `per_address` attempts from `address`, or
    `per_user` from anywhere, within the last `window` seconds."""

    async def write(tx: Session) -> Admission:
        since = at - window
        await tx.execute("DELETE FROM login_attempts WHERE at <= ?", (since,))
        limits = (
            ("address", per_address, "AND address = ?", (user_key, address)),
            ("user", per_user, "", (user_key,)),
        )
        counts = {}
        for scope, limit, narrower, params in limits:
            where = f"WHERE user_key = ? {narrower} AND at > ?"
            row = await tx.fetchone(f"SELECT count(*) AS n FROM login_attempts {where}", (*params, since))
            assert row is not None
            if row["n"] >= limit:
                # When the limit-th newest attempt is `window` old, there are fewer than
                # `limit` again.
                oldest = await tx.fetchone(
                    f"SELECT at FROM login_attempts {where} ORDER BY at DESC LIMIT 1 OFFSET ?",
                    (*params, since, limit - 1),
                )
                assert oldest is not None
                return Admission(retry_after=max(oldest["at"] + window - at, 0.001), refused_by=scope)
            counts[scope] = (row["n"] + 1, limit)
        await tx.execute(
            "INSERT INTO login_attempts (user_key, address, at) VALUES (?, ?, ?)", (user_key, address, at)
        )
        reached = next((scope for scope, (n, limit) in counts.items() if n == limit), None)
        return Admission(retry_after=0.0, reached=reached)

    return await db.transaction(write)


async def forget(db: Database, user_key: str, address: str) -> None:
    """A successful sign-in: this address's earlier failures for the name no longer count."""
    await db.execute("DELETE FROM login_attempts WHERE user_key = ? AND address = ?", (user_key, address))
