"""Writes the JSON Schemas of the published payloads (`python -m cti_bridge.screenpop.schema`)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from cti_bridge.screenpop.payload import (
    AgentNotification,
    AgentStateNotice,
    CallbackNotice,
    ScreenPop,
    SlaNotice,
    TicketNotice,
)

HERE = Path(__file__).parent
SCHEMAS: dict[str, type[BaseModel]] = {
    "screenpop.schema.json": ScreenPop,
    "ticket-notice.schema.json": TicketNotice,
    "sla-notice.schema.json": SlaNotice,
    "agent-notification.schema.json": AgentNotification,
    "callback.schema.json": CallbackNotice,
    "agent-state.schema.json": AgentStateNotice,
}


def render(model: type[BaseModel]) -> str:
    return json.dumps(model.model_json_schema(), ensure_ascii=False, indent=2) + "\n"


if __name__ == "__main__":
    for name, model in SCHEMAS.items():
        (HERE / name).write_text(render(model), encoding="utf-8")
        print(f"wrote {HERE / name}")
