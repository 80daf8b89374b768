"""`cti-bridge users ...`: the people who sign in to the pages and the API, and API tokens.

Passwords are read from a terminal prompt or, for scripts, one line of standard input
(`--password-stdin`); never from the command line, where `ps` and shell history would keep it.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from typing import Any

from cti_bridge.config import load_config

_MIN_PASSWORD = 8


def add_parsers(commands: Any, config_arg: argparse.ArgumentParser) -> None:
    users = commands.add_parser("users", help="people who sign in, and API tokens").add_subparsers()

    add = users.add_parser("add", parents=[config_arg], help="add a user")
    add.add_argument("id", help="login name (an agent's is usually its agent id)")
    add.add_argument("--role", required=True, choices=["agent", "supervisor", "admin"])
    add.add_argument("--agent", help="the config's agents[].id (role agent; default: the login name)")
    add.add_argument("--name", default="", help="display name")
    add.add_argument("--language", choices=["zh", "en"], help="page language (default: the browser's)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.add_argument("--no-password", action="store_true", help="API tokens only, no sign-in")
    add.set_defaults(handler=_add)

    listing = users.add_parser("list", parents=[config_arg], help="list users")
    listing.set_defaults(handler=_list)

    password = users.add_parser("password", parents=[config_arg], help="set a new password (signs them out)")
    password.add_argument("id")
    password.add_argument("--password-stdin", action="store_true")
    password.set_defaults(handler=_password)

    for name, disabled, text in (
        ("disable", True, "stop a user signing in"),
        ("enable", False, "let them again"),
    ):
        sub = users.add_parser(name, parents=[config_arg], help=text)
        sub.add_argument("id")
        sub.set_defaults(handler=_set_disabled, disabled=disabled)

    token = users.add_parser("token", parents=[config_arg], help="issue an API token (printed once)")
    token.add_argument("id", help="the user the token acts as")
    token.add_argument("--label", required=True, help="what uses it, e.g. crm-sync")
    token.set_defaults(handler=_token)

    tokens = users.add_parser("tokens", parents=[config_arg], help="list API tokens")
    tokens.set_defaults(handler=_tokens)

    revoke = users.add_parser("revoke", parents=[config_arg], help="revoke an API token by its id")
    revoke.add_argument("token_id", type=int)
    revoke.set_defaults(handler=_revoke)


def _run(args: argparse.Namespace, work: Any) -> Any:
    from cti_bridge.cli import _on_store

    config = load_config(args.config, check_secrets=False)
    return _on_store(config, lambda store: work(store.database, config))


def _fail(message: str) -> int:
    print(f"cti-bridge: {message}", file=sys.stderr)
    return 1


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise ValueError("the passwords differ")
    else:
        raise ValueError("no terminal to ask for the password on: give --password-stdin")
    if len(password) < _MIN_PASSWORD:
        raise ValueError(f"a password needs at least {_MIN_PASSWORD} characters")
    return password


def _add(args: argparse.Namespace) -> int:
    from cti_bridge.store.users import UserError, add_user
    from cti_bridge.web.auth import hash_password

    agent_id = args.agent or (args.id if args.role == "agent" else None)
    try:
        password = None if args.no_password else _read_password(args.password_stdin)
    except ValueError as exc:
        return _fail(str(exc))

    async def work(db: Any, config: Any) -> Any:
        if args.role == "agent" and agent_id not in {a.id for a in config.agents}:
            return f"agent {agent_id!r} is not in {args.config}'s agents"
        try:
            return await add_user(
                db,
                args.id,
                role=args.role,
                name=args.name,
                agent_id=agent_id,
                language=args.language,
                password_hash=await hash_password(password) if password else None,
                at=time.time(),
            )
        except UserError as exc:
            return str(exc)

    added = _run(args, work)
    if isinstance(added, str):
        return _fail(added)
    print(f"added {added.role} {added.id}" + (f" (agent {added.agent_id})" if added.agent_id else ""))
    return 0


def _list(args: argparse.Namespace) -> int:
    from cti_bridge.store.users import users

    for user in _run(args, lambda db, _config: users(db)):
        flags = [f for f, on in (("disabled", user.disabled), ("no password", not user.has_password)) if on]
        agent = f" agent={user.agent_id}" if user.agent_id else ""
        print(
            f"{user.id:<20} {user.role:<10}{agent} {user.name}" + (f"  [{', '.join(flags)}]" if flags else "")
        )
    return 0


def _change(args: argparse.Namespace, change: Any) -> int:
    """Run `await change(db)` on the store; a refusal (unknown user, token) is the message."""
    from cti_bridge.store.users import UserError

    async def work(db: Any, _config: Any) -> str | None:
        try:
            await change(db)
        except UserError as exc:
            return str(exc)
        return None

    problem = _run(args, work)
    return _fail(problem) if problem else 0


def _password(args: argparse.Namespace) -> int:
    from cti_bridge.store.users import update_user
    from cti_bridge.web.auth import hash_password

    try:
        password = _read_password(args.password_stdin)
    except ValueError as exc:
        return _fail(str(exc))

    async def change(db: Any) -> None:
        await update_user(db, args.id, password_hash=await hash_password(password))

    return _change(args, change)


def _set_disabled(args: argparse.Namespace) -> int:
    from cti_bridge.store.users import update_user

    return _change(args, lambda db: update_user(db, args.id, disabled=args.disabled))


def _token(args: argparse.Namespace) -> int:
    from cti_bridge.store.users import add_token
    from cti_bridge.web.auth import digest, new_token

    token = new_token()
    added = _change(
        args, lambda db: add_token(db, args.id, label=args.label, token_hash=digest(token), at=time.time())
    )
    if added == 0:
        print(token)  # the only time it is shown: the store keeps its SHA-256
    return added


def _tokens(args: argparse.Namespace) -> int:
    from cti_bridge.store.users import tokens

    for token in _run(args, lambda db, _config: tokens(db)):
        state = "revoked" if token.revoked_at else "live"
        used = (
            time.strftime("%Y-%m-%d %H:%M", time.localtime(token.last_used_at))
            if token.last_used_at
            else "never"
        )
        print(f"{token.id:<5} {token.user_id:<20} {token.label:<24} {state:<8} last used {used}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from cti_bridge.store.users import revoke_token

    return _change(args, lambda db: revoke_token(db, args.token_id, at=time.time()))
