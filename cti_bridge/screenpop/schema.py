"""Writes the JSON Schemas of the published payloads (`python -m cti_bridge.screenpop.schema`)."""

from __future__ import annotations

import json
from pathlib import Path

from cti_bridge.screenpop.payload import ScreenPop, TicketNotice

HERE = Path(__file__).parent
SCHEMAS = {"screenpop.schema.json": ScreenPop, "ticket-notice.schema.json": TicketNotice}


def render(model: type[ScreenPop] | type[TicketNotice]) -> str:
    return json.dumps(model.model_json_schema(), ensure_ascii=False, indent=2) + "\n"


if __name__ == "__main__":
    for name, model in SCHEMAS.items():
        (HERE / name).write_text(render(model), encoding="utf-8")
        print(f"wrote {HERE / name}")
