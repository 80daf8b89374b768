"""Click-to-dial: an agent calls a customer from a ticket or the customer's page.

The daemon rings the agent's own phone and, when they pick up, dials the customer from it
(AMI Originate through the PBX's `originate` account). The call then runs like any outbound
call the agent makes; the ticket variable it carries (CTI_TICKET) attaches it to the ticket it
was placed from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import structlog

from cti_bridge.config.model import AgentConfig, Config, OriginateConfig
from cti_bridge.phone import dialable, mask, to_e164

log = structlog.get_logger(__name__)


class Dialer(Protocol):
    """One PBX's way to place a call (cti_bridge.ami.originate.AmiDialer)."""

    @property
    def settings(self) -> OriginateConfig: ...

    async def originate(
        self, *, device: str, exten: str, caller_id: str, variables: Mapping[str, str]
    ) -> None: ...


class DialError(ValueError):
    """The call cannot be placed as asked: no phone number, no device, not configured."""


@dataclass(frozen=True, slots=True)
class DialPlaced:
    pbx: str
    agent_id: str
    device: str
    number: str  # E.164
    ticket: str | None


class ClickToDial:
    """Places agents' calls to customers on the PBXs that allow it."""

    def __init__(self, config: Config, dialers: Mapping[str, Dialer]) -> None:
        self._config = config
        self._dialers = dict(dialers)
        self._agents = {agent.id: agent for agent in config.agents}
        self._ticket_variables = {pbx.name: pbx.ticket_variable for pbx in config.pbxs}

    @property
    def enabled(self) -> bool:
        return bool(self._dialers)

    async def dial(self, *, agent_id: str, phone: str | None, ticket: str | None = None) -> DialPlaced:
        """Ring the agent's phone, then dial `phone` from it.

        Raises:
            DialError: nothing to dial, an unknown agent, or no PBX that may originate.
            cti_bridge.ami.originate.DialRefused: the PBX said no (or could not be reached).
        """
        number = to_e164(phone, self._config.phone.default_region) if phone else None
        if number is None:
            raise DialError(f"{phone!r} is not a number that can be dialled" if phone else "no phone number")
        agent = self._agents.get(agent_id)
        if agent is None:
            raise DialError(f"{agent_id!r} is not an agent in the config: no phone to ring")
        pbx = self._pbx_of(agent)
        dialer = self._dialers[pbx]
        settings = dialer.settings
        device = _device_of(agent)
        variables = {"CTI_AGENT": agent_id}
        ticket_variable = self._ticket_variables.get(pbx)
        if ticket and ticket_variable:
            variables[ticket_variable] = ticket
        # The agent's phone shows who they are about to call (and for which ticket).
        label = f"{ticket} {number}" if ticket else number
        await dialer.originate(
            device=device,
            exten=settings.dial_prefix + dialable(number, settings.number_format),
            caller_id=f'"{label}" <{number}>',
            variables=variables,
        )
        log.info("dial.placed", pbx=pbx, agent=agent_id, device=device, number=mask(number), ticket=ticket)
        return DialPlaced(pbx=pbx, agent_id=agent_id, device=device, number=number, ticket=ticket)

    def _pbx_of(self, agent: AgentConfig) -> str:
        if agent.pbx is not None:
            if agent.pbx not in self._dialers:
                raise DialError(f"click-to-dial is not configured on PBX {agent.pbx} (pbxs[].originate)")
            return agent.pbx
        if not self._dialers:
            raise DialError("click-to-dial is not configured (pbxs[].originate)")
        return next(iter(self._dialers))


def _device_of(agent: AgentConfig) -> str:
    if agent.phone:
        return agent.phone
    if agent.interfaces:
        return agent.interfaces[0]
    return f"PJSIP/{agent.extension}"
