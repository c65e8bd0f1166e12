"""The command table drives what Discord receives: each entry's options, types, ranges,
descriptions, autocomplete and permissions, as the written-out commands had them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import discord
import pytest
import pytest_asyncio
from discord import app_commands

import zsl
from bot import commands, messages
from bot.cogs.zeroshot import ZeroShotCog
from bot.settings import Settings

STRING, INTEGER, BOOLEAN, NUMBER = 3, 4, 5, 10
MANAGE_GUILD = 1 << 5


@pytest_asyncio.fixture
async def synced(tiny: zsl.WordVectors, db_url: str) -> AsyncIterator[dict[str, Any]]:
    """Each generated command as discord.py sends it to Discord, by name."""
    service = await zsl.ZeroShotService.open(tiny, db_url)
    cog = ZeroShotCog(service, Settings())
    tree = app_commands.CommandTree(discord.Client(intents=discord.Intents.none()))
    yield {name: command.to_dict(tree) for name, command in cog.slash_commands.items()}
    await service.close()


@pytest.mark.asyncio
async def test_classify_syncs_as_it_was_written_out(synced: dict[str, Any]) -> None:
    assert synced["classify"]["options"] == [
        {
            "name": "text",
            "description": messages.CLASSIFY_TEXT,
            "type": STRING,
            "required": True,
            "min_length": 1,
            "max_length": 4000,
        },
        {
            "name": "top",
            "description": messages.CLASSIFY_TOP,
            "type": INTEGER,
            "required": False,
            "min_value": 1,
            "max_value": 10,
        },
        {
            "name": "private",
            "description": messages.CLASSIFY_PRIVATE,
            "type": BOOLEAN,
            "required": False,
        },
    ]
    assert synced["classify"]["default_member_permissions"] is None
    assert synced["classify"]["contexts"] == [0]


@pytest.mark.asyncio
async def test_threshold_and_remove_example_sync_their_ranges_and_autocomplete(
    synced: dict[str, Any],
) -> None:
    threshold = {o["name"]: o for o in synced["threshold"]["options"]}
    remove = {o["name"]: o for o in synced["removeexample"]["options"]}

    assert threshold["value"] == {
        "name": "value",
        "description": messages.THRESHOLD_VALUE,
        "type": NUMBER,
        "required": False,
        "min_value": 0.0,
        "max_value": 1.0,
    }
    assert remove["name"]["autocomplete"] is True
    assert (remove["name"]["min_length"], remove["name"]["max_length"]) == (1, 100)
    assert (remove["number"]["min_value"], remove["number"]["max_value"]) == (1, 10_000)
    assert synced["votes"]["options"][0]["min_value"] == 1
    assert "max_value" not in synced["votes"]["options"][0]


@pytest.mark.asyncio
async def test_every_entry_syncs_its_options_and_who_may_run_it(synced: dict[str, Any]) -> None:
    for spec in commands.COMMANDS:
        command = synced[spec.name]
        options = {o["name"]: o for o in command["options"]}

        assert command["description"] == spec.description
        assert command["contexts"] == [0], spec.name
        permissions = command["default_member_permissions"]
        assert permissions == (MANAGE_GUILD if spec.admin else None), spec.name
        assert list(options) == [o.name for o in spec.options if o.required] + [
            o.name for o in spec.options if not o.required
        ]
        for option in spec.options:
            assert options[option.name]["description"] == option.description
            assert options[option.name]["required"] is option.required
            assert bool(options[option.name].get("autocomplete")) is option.class_name
