"""One ZeroShotService process for the multi-process tests, driven by JSON lines on stdin.

    python -m tests.scale.service_worker DATABASE_URL

Requests: {"op": "add", "guild": 1, "name": "...", "description": "..."},
{"op": "classes", "guild": 1}, {"op": "classify", "guild": 1, "text": "..."}. Each answer is
one JSON line: {"ok": ...} or {"error": "<ZslError class>", "message": "..."}. It prints
{"ready": true} once the service is open, and exits when stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from typing import Any

import zsl


async def _answer(service: zsl.ZeroShotService, request: dict[str, Any]) -> Any:
    guild = int(request["guild"])
    match request["op"]:
        case "add":
            await service.add_class(guild, request["name"], request.get("description", ""))
            return True
        case "classes":
            return [c.name for c in await service.classes(guild)]
        case "classify":
            return (await service.classify(guild, request["text"])).top.name
    raise ValueError(f"unknown op {request['op']!r}")


async def main(url: str) -> None:
    service = await zsl.ZeroShotService.open(
        zsl.load_vectors(cache_dir=os.environ["ZSL_CACHE_DIR"]), url
    )
    loop = asyncio.get_running_loop()
    print(json.dumps({"ready": True}), flush=True)
    async with service:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            try:
                reply = {"ok": await _answer(service, json.loads(line))}
            except zsl.ZslError as exc:
                reply = {"error": type(exc).__name__, "message": str(exc)}
            print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    asyncio.run(main(sys.argv[1]))
