"""Which agent a device belongs to: interface or extension -> agent id."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# "PJSIP/1001-0000000a" and "Local/agent1@agents-00000002;1" name the devices
# "PJSIP/1001" and "Local/agent1@agents": drop the Local half and the per-call counter.
_CHANNEL_SUFFIX = re.compile(r"(?:-[0-9a-f]{8,})?(?:;[12])?$")


def interface_of(channel: str) -> str:
    """The device interface a channel name belongs to."""
    return _CHANNEL_SUFFIX.sub("", channel, count=1)


@dataclass(frozen=True, slots=True)
class AgentEntry:
    agent_id: str
    interfaces: tuple[str, ...] = ()
    extension: str | None = None
    pbx: str | None = None


class AgentDirectory:
    """Maps device interfaces to agent ids, optionally per PBX."""

    def __init__(self, entries: Iterable[AgentEntry]) -> None:
        self._by_interface: dict[tuple[str | None, str], str] = {}
        self._by_extension: dict[tuple[str | None, str], str] = {}
        # PJSIP/1001 is also the agent behind Local/1001@from-queue/n: queues that reach their
        # members through Local channels (FreePBX and its kin) name the extension, not the device.
        self._by_device_extension: dict[tuple[str | None, str], str] = {}
        for entry in entries:
            for interface in entry.interfaces:
                self._by_interface[(entry.pbx, interface.lower())] = entry.agent_id
                tech, slash, resource = interface.partition("/")
                if slash and tech.lower() != "local" and resource.isdigit():
                    self._by_device_extension.setdefault((entry.pbx, resource), entry.agent_id)
            if entry.extension:
                self._by_extension[(entry.pbx, entry.extension)] = entry.agent_id

    def agent_of_channel(self, pbx: str, channel: str) -> str | None:
        """The agent whose device a channel (`PJSIP/1001-0000000a`) is on; None for no channel."""
        return self.agent_for(pbx, interface_of(channel)) if channel else None

    def agent_for(self, pbx: str, interface: str) -> str | None:
        """The agent whose device is `interface` on `pbx`, if any."""
        key = interface.lower()
        agent = self._by_interface.get((pbx, key)) or self._by_interface.get((None, key))
        if agent is not None:
            return agent
        tech, slash, resource = interface.partition("/")
        if not slash:
            return None
        extension = resource.split("@", 1)[0]
        found = self._by_extension.get((pbx, extension)) or self._by_extension.get((None, extension))
        if found is None and tech.lower() == "local":
            found = self._by_device_extension.get((pbx, extension)) or self._by_device_extension.get(
                (None, extension)
            )
        return found
