"""Click-to-dial through the API: who may dial, what reaches the PBX, and how refusals read.

The PBX is the edge: a recording dialer stands in for the AMI Originate here
(tests/integration/test_call_flows.py places real calls on the sandbox Asterisk).
"""

from collections.abc import Mapping

import pytest

from cti_bridge.ami.originate import DialRefused
from cti_bridge.click_to_dial import ClickToDial
from cti_bridge.config.model import OriginateConfig
from tests.unit.web.conftest import CUSTOMER_PHONE, OTHER_CUSTOMER_PHONE


class RecordingDialer:
    def __init__(self, refuse: str | None = None) -> None:
        self.settings = OriginateConfig.model_validate(
            {"username": "dial", "secret": {"env": "UNSET"}, "dial_prefix": "0", "number_format": "digits"}
        )
        self.placed: list[dict[str, object]] = []
        self._refuse = refuse

    async def originate(
        self, *, device: str, exten: str, caller_id: str, variables: Mapping[str, str]
    ) -> None:
        if self._refuse:
            raise DialRefused(self._refuse)
        self.placed.append(
            {"device": device, "exten": exten, "caller_id": caller_id, "variables": dict(variables)}
        )


@pytest.fixture
def dialer(site):
    recording = RecordingDialer()
    site.ctx.dialer = ClickToDial(site.ctx.config, {"main": recording})
    return recording


async def test_an_agent_dials_their_tickets_customer_from_their_own_phone(site, dialer):
    number = site.ticket("a1")
    response = await site.as_user("a1").post(f"/api/tickets/{number}/dial", json={})
    assert response.status_code == 202, response.text
    assert response.json() == {
        "status": "dialing",
        "agent_id": "a1",
        "device": "PJSIP/1001",  # agents[].extension: the default device
        "pbx": "main",
        "ticket": number,
    }
    [placed] = dialer.placed
    assert placed["exten"] == "0" + CUSTOMER_PHONE.lstrip("+")  # dial_prefix + digits
    assert placed["variables"] == {"CTI_AGENT": "a1", "CTI_TICKET": number}
    assert CUSTOMER_PHONE in placed["caller_id"] and number in placed["caller_id"]


async def test_an_agent_dials_a_customer_they_may_see(site, dialer):
    wang = site.seeded.customers["wang"]
    response = await site.as_user("a1").post(f"/api/customers/{wang}/dial", json={})
    assert response.status_code == 202, response.text
    assert dialer.placed[0]["variables"] == {"CTI_AGENT": "a1"}  # no ticket named: the usual matching
    other = await site.as_user("a1").post(f"/api/customers/{wang}/dial", json={"phone": OTHER_CUSTOMER_PHONE})
    assert other.status_code == 409 and "not one of this customer's numbers" in other.json()["detail"]
    unseen = await site.as_user("a1").post(f"/api/customers/{site.seeded.customers['li']}/dial", json={})
    assert unseen.status_code == 404
    assert len(dialer.placed) == 1


async def test_who_may_not_dial_and_what_cannot_be_dialled(site, dialer):
    number = site.ticket("a1")
    supervisor = await site.as_user("sup").post(f"/api/tickets/{number}/dial", json={})
    assert supervisor.status_code == 403
    others = await site.as_user("a2").post(f"/api/tickets/{number}/dial", json={})
    assert others.status_code == 404  # not theirs to see, so not theirs to call from
    junk = await site.as_user("a1").post(f"/api/tickets/{number}/dial", json={"phone": "12"})
    assert junk.status_code == 409
    assert dialer.placed == []


async def test_a_pbx_that_refuses_answers_502_and_no_dialer_409(site):
    number = site.ticket("a1")
    site.ctx.dialer = None
    off = await site.as_user("a1").post(f"/api/tickets/{number}/dial", json={})
    assert off.status_code == 409 and "not configured" in off.json()["detail"]
    site.ctx.dialer = ClickToDial(site.ctx.config, {"main": RecordingDialer(refuse="PBX main refused: busy")})
    refused = await site.as_user("a1").post(f"/api/tickets/{number}/dial", json={})
    assert refused.status_code == 502 and "busy" in refused.json()["detail"]


async def test_the_pages_offer_the_call_button_only_to_agents_when_dialling_works(site, dialer):
    assert (await site.as_user("a1").get("/api/meta")).json()["can_dial"] is True
    assert (await site.as_user("sup").get("/api/meta")).json()["can_dial"] is False
    site.ctx.dialer = None
    assert (await site.as_user("a1").get("/api/meta")).json()["can_dial"] is False
