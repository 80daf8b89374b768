"""Click-to-dial's AMI edge: one short session of the dialling account per call placed.

A session per request, not one kept open: calls are placed by people, a few a minute, and a
session that is not there cannot be left logged in with write rights when nobody dials.
panoramisk 1.4 resolves an async Originate's future only at its OriginateResponse (when the
agent's phone answers, or never); the first response, "Originate successfully queued", is what
tells whether the PBX took the request, so that is what is awaited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from panoramisk import actions
from pydantic import SecretStr

from cti_bridge.ami.client import ACTION_TIMEOUT, CONNECT_TIMEOUT, AmiLoginFailed, open_session, tls_context
from cti_bridge.config.model import OriginateConfig, PbxConfig
from cti_bridge.config.tls import TlsSetupError


class DialRefused(Exception):
    """The PBX could not be reached, refused the login or refused the Originate."""


class FirstResponseAction(actions.Action):  # type: ignore[misc]
    """An action whose `first` future gets its first response (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.first: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def add_message(self, message: Any) -> Any:
        if not self.first.done():
            self.first.set_result(message)
        return super().add_message(message)


class AmiDialer:
    """Places click-to-dial calls on one PBX through its `originate` account."""

    def __init__(self, pbx: PbxConfig, settings: OriginateConfig, secret: SecretStr) -> None:
        self._pbx = pbx
        self._settings = settings
        self._secret = secret

    @property
    def settings(self) -> OriginateConfig:
        return self._settings

    async def originate(
        self, *, device: str, exten: str, caller_id: str, variables: Mapping[str, str]
    ) -> None:
        """Ring `device`; once it answers, run `exten` in the configured context.

        Raises:
            DialRefused: with the PBX's own words when it said no.
        """
        try:
            session, lost = await open_session(
                self._pbx.host,
                self._pbx.port,
                self._settings.username,
                self._secret,
                timeout=CONNECT_TIMEOUT,
                tls=await tls_context(self._pbx),
            )
        except AmiLoginFailed as exc:
            raise DialRefused(f"PBX {self._pbx.name}: the dialling account's {exc}") from exc
        except (OSError, TimeoutError, ConnectionError, TlsSetupError) as exc:
            raise DialRefused(f"PBX {self._pbx.name} unreachable: {exc}") from exc
        try:
            action = FirstResponseAction(
                {
                    "Action": "Originate",
                    "Channel": device,
                    "Context": self._settings.context,
                    "Exten": exten,
                    "Priority": "1",
                    "CallerID": caller_id,
                    "Timeout": str(int(self._settings.ring_timeout.total_seconds() * 1000)),
                    "Async": "true",
                    "Variable": ",".join(f"{name}={value}" for name, value in variables.items()),
                }
            )
            session.send_action(action)
            done, _ = await asyncio.wait(
                {action.first, lost}, timeout=ACTION_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
            )
            if action.first not in done:
                raise DialRefused(f"PBX {self._pbx.name} did not answer the Originate")
            response = action.first.result()
            if response.get("Response") != "Success":
                raise DialRefused(
                    f"PBX {self._pbx.name} refused: {response.get('Message', 'no reason given')}"
                )
        finally:
            session.awaiting_actions.clear()  # the OriginateResponse is nobody's business here
            session.close()
