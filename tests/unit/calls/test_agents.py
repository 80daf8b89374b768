import pytest

from cti_bridge.calls.agents import AgentDirectory, AgentEntry, interface_of


@pytest.mark.parametrize(
    ("channel", "interface"),
    [
        ("PJSIP/1001-0000000a", "PJSIP/1001"),
        ("Local/agent1@agents-00000002;1", "Local/agent1@agents"),
        ("SIP/trunk-provider-000001f3", "SIP/trunk-provider"),
        ("PJSIP/1001", "PJSIP/1001"),
    ],
)
def test_interface_of_channel(channel, interface):
    assert interface_of(channel) == interface


def test_directory_by_interface_extension_and_pbx():
    directory = AgentDirectory(
        [
            AgentEntry("alice", ("PJSIP/1001",)),
            AgentEntry("bob", (), extension="1002"),
            AgentEntry("carol", ("PJSIP/1003",), pbx="east"),
        ]
    )
    assert directory.agent_for("main", "pjsip/1001") == "alice"
    assert directory.agent_for("main", "SIP/1002") == "bob"
    assert directory.agent_for("main", "Local/1002@from-queue") == "bob"
    assert directory.agent_for("east", "PJSIP/1003") == "carol"
    assert directory.agent_for("west", "PJSIP/1003") is None
    assert directory.agent_for("main", "PJSIP/9999") is None


def test_a_queue_member_reached_through_a_local_channel_is_the_devices_agent():
    # FreePBX-style queues ring Local/1001@from-queue/n; the agent is configured by device.
    directory = AgentDirectory([AgentEntry("alice", ("PJSIP/1001",)), AgentEntry("dave", ("PJSIP/1004",))])
    assert directory.agent_for("main", "Local/1001@from-queue/n") == "alice"
    assert directory.agent_for("main", "Local/1004@from-queue") == "dave"
    # Only Local channels name an extension that way: SIP/1001 is another device altogether.
    assert directory.agent_for("main", "SIP/1001") is None
