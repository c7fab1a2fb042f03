"""GET /healthz and /readyz: alive, and ready only with data and while not draining."""

from __future__ import annotations

import json
import random

from quart.typing import TestClientProtocol as AppClient

from tests.app.conftest import LiveHub
from tests.app.market import RandomMarket
from ticker.app.health import DRAINING, NO_DATA


async def test_alive_whatever_the_state(client: AppClient, live_hub: LiveHub) -> None:
    for draining in (False, True):
        live_hub.context.shutting_down = draining
        response = await client.get("/healthz")
        assert response.status_code == 200
        assert json.loads(await response.get_data()) == {"alive": True}


async def test_not_ready_before_the_first_data(client: AppClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert json.loads(await response.get_data()) == {"ready": False, "reason": NO_DATA}


async def test_ready_once_data_flows_and_not_while_draining(
    client: AppClient, live_hub: LiveHub
) -> None:
    await live_hub.publish(*RandomMarket(random.Random(1)).events(5))
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert json.loads(await response.get_data()) == {"ready": True}
    assert response.headers["Cache-Control"] == "no-store"

    live_hub.context.shutting_down = True
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert json.loads(await response.get_data()) == {"ready": False, "reason": DRAINING}


async def test_unknown_paths_get_json_404(client: AppClient) -> None:
    response = await client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.content_type == "application/json"
    assert json.loads(await response.get_data())["status"] == 404
