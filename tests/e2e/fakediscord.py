"""A small fake of Discord for end-to-end tests: REST and the gateway websocket on 127.0.0.1.

It speaks just enough of the real protocol for discord.py 2.x: login (``/users/@me``, the
application), ``/gateway/bot``, command sync, the gateway handshake (HELLO, IDENTIFY, READY,
heartbeats), interaction callbacks and webhook follow-ups. It records every request, and it
refuses what Discord would refuse: a wrong token, an interaction for a command that was never
synced, an option that the synced command does not have, a first answer more than 3 seconds
after the interaction (``late_callbacks`` lists those), a follow-up to an interaction that was
never acknowledged.

Things discord.py is strict about: a response is parsed as JSON only when ``Content-Type`` is
exactly ``application/json`` (no charset); the interaction callback is posted with
``?with_response=1`` and must answer ``{"interaction": ..., "resource": ...}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from aiohttp import BodyPartReader, WSMsgType, web

TOKEN = "fake-token-for-tests"
APPLICATION_ID = 1100000000000000001
BOT_USER_ID = APPLICATION_ID
MANAGE_GUILD = 1 << 5
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
READ_MESSAGE_HISTORY = 1 << 16
MANAGE_THREADS = 1 << 34
SEND_MESSAGES_IN_THREADS = 1 << 38
BOT_PERMISSIONS = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | ADD_REACTIONS
    | READ_MESSAGE_HISTORY
    | MANAGE_THREADS
    | SEND_MESSAGES_IN_THREADS
)
"""What the bot's role allows in a fake guild, unless a channel denies it."""
MEMBER_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 31)  # view channel, send, use commands
ADMIN_PERMISSIONS = MEMBER_PERMISSIONS | MANAGE_GUILD
CHANNEL_OPTION = 7
EPHEMERAL = 1 << 6

# Interaction callback types
PONG, CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, UPDATE_MESSAGE, AUTOCOMPLETE_RESULT = 1, 4, 5, 7, 8

READY_SECONDS = 60.0  # a cold start converts the default model first
ANSWER_SECONDS = 10.0
ACK_SECONDS = 3.0
"""Discord forgets an interaction that is not acknowledged within this many seconds."""

Json = dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _json(data: Any, status: int = 200) -> web.Response:
    # Not web.json_response: it adds "; charset=utf-8" and discord.py would then see text.
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


async def _multipart(request: web.Request) -> Json:
    """A message with files, as discord.py sends it: the JSON in ``payload_json``, then the
    files; they come back in the message's ``files`` as {"filename", "content"} (text)."""
    body: Json = {}
    files: list[Json] = []
    reader = await request.multipart()
    async for part in reader:
        assert isinstance(part, BodyPartReader)
        data = await part.read()
        if part.name == "payload_json":
            body.update(json.loads(data))
        else:
            files.append({"filename": part.filename, "content": data.decode()})
    # An interaction callback holds its message under "data"; a follow-up is the message.
    message = body["data"] if isinstance(body.get("data"), dict) else body
    message["files"] = files
    return body


def message_json(
    message_id: int, channel_id: int, content: str, author: Json, **fields: Any
) -> Json:
    """A message as Discord sends it: an ordinary one of ``author``, unless ``fields`` (e.g.
    ``guild_id``, ``member``, ``edited_timestamp``, ``type``) say otherwise."""
    return {
        "id": str(message_id),
        "channel_id": str(channel_id),
        "type": 0,
        "content": content,
        "embeds": [],
        "author": author,
        "attachments": [],
        "mentions": [],
        "mention_roles": [],
        "mention_everyone": False,
        "pinned": False,
        "tts": False,
        "timestamp": _now(),
        "edited_timestamp": None,
        "flags": 0,
        "components": [],
        **fields,
    }


def user_payload(user_id: int, name: str, *, bot: bool = False) -> Json:
    return {
        "id": str(user_id),
        "username": name,
        "global_name": name,
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
        "flags": 0,
        "public_flags": 0,
    }


@dataclass
class Guild:
    """A guild of text channels as the fake keeps it, and as Discord describes it."""

    id: int
    channels: dict[int, str]
    denied: dict[int, int] = field(default_factory=dict)
    """Per channel: what an overwrite denies the bot."""
    forums: dict[int, list[Json]] = field(default_factory=dict)
    """Forum channels (also in ``channels``): their available tags."""
    threads: dict[int, Json] = field(default_factory=dict)
    """Forum posts: their channel payload (applied_tags changes as the bot edits them)."""

    @property
    def bot_role(self) -> int:
        return self.id + 1

    def allowed(self, channel_id: int) -> int:
        if channel_id in self.threads:  # a post has its forum's permissions
            channel_id = int(self.threads[channel_id]["parent_id"])
        return BOT_PERMISSIONS & ~self.denied.get(channel_id, 0)

    def channel_payload(self, channel_id: int) -> Json:
        overwrites = []
        if self.denied.get(channel_id):
            overwrites.append(
                {
                    "id": str(BOT_USER_ID),
                    "type": 1,
                    "allow": "0",
                    "deny": str(self.denied[channel_id]),
                }
            )
        forum = {"available_tags": self.forums[channel_id]} if channel_id in self.forums else {}
        return forum | {
            "id": str(channel_id),
            "type": 15 if channel_id in self.forums else 0,
            "guild_id": str(self.id),
            "name": self.channels[channel_id],
            "position": 0,
            "permission_overwrites": overwrites,
            "nsfw": False,
            "parent_id": None,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
        }

    def payload(self) -> Json:
        role = {"position": 0, "color": 0, "hoist": False, "managed": False, "mentionable": False}
        return {
            "id": str(self.id),
            "name": f"guild {self.id}",
            "icon": None,
            "owner_id": "1000",
            "roles": [
                {**role, "id": str(self.id), "name": "@everyone", "permissions": "0", "flags": 0},
                {
                    **role,
                    "id": str(self.bot_role),
                    "name": "zsl",
                    "permissions": str(BOT_PERMISSIONS),
                    "position": 1,
                    "flags": 0,
                },
            ],
            "emojis": [],
            "stickers": [],
            "features": [],
            "channels": [self.channel_payload(c) for c in self.channels],
            "threads": [],
            "members": [
                {
                    "user": user_payload(BOT_USER_ID, "zsl-test-bot", bot=True),
                    "roles": [str(self.bot_role)],
                    "joined_at": _now(),
                    "deaf": False,
                    "mute": False,
                    "flags": 0,
                }
            ],
            "member_count": 2,
            "large": False,
            "unavailable": False,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "system_channel_flags": 0,
            "nsfw_level": 0,
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
        }


@dataclass
class Recorded:
    """One HTTP request the bot made."""

    method: str
    path: str
    query: Mapping[str, str]
    body: Any
    at: float


@dataclass
class Exchange:
    """Everything the bot answered to one interaction."""

    sent_at: float
    callback: Json | None = None
    callback_at: float | None = None
    callback_query: Mapping[str, str] = field(default_factory=dict)
    followups: list[Json] = field(default_factory=list)
    followup_at: float | None = None
    message_id: str | None = None
    """The id of the message the first callback created (components hang under it)."""
    late_callback_at: float | None = None
    """When a callback came too late and was refused with "Unknown interaction"."""
    parent: Exchange | None = None
    """For a click on a control: the exchange whose message holds the control."""
    deleted_original: bool = False
    """The bot deleted its first answer (after a defer: the "thinking" message)."""
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def callback_type(self) -> int | None:
        return None if self.callback is None else int(self.callback["type"])

    @property
    def message(self) -> Json:
        """The message the user finally sees: the follow-up after a defer, else the reply."""
        if self.followups:
            return self.followups[-1]
        assert self.callback is not None
        data: Json = self.callback.get("data") or {}
        return data

    @property
    def ephemeral(self) -> bool:
        """Whether the user alone sees the answer (decided by the first callback)."""
        assert self.callback is not None
        flags = int((self.callback.get("data") or {}).get("flags") or 0)
        return bool(flags & EPHEMERAL)

    @property
    def text(self) -> str:
        """Content plus every embed's title, description and footer, for assertions."""
        message = self.message
        parts = [message.get("content") or ""]
        for embed in message.get("embeds") or []:
            parts += [
                embed.get("title") or "",
                embed.get("description") or "",
                (embed.get("footer") or {}).get("text") or "",
            ]
        return "\n".join(part for part in parts if part)

    def is_final(self) -> bool:
        if self.callback_type in (CHANNEL_MESSAGE, AUTOCOMPLETE_RESULT):
            return True
        if self.callback_type == UPDATE_MESSAGE and self.parent is None:
            return True  # a click on a message the bot posted itself: the update is the answer
        # The bot follows a defer with its answer, and an update of the clicked message with
        # a sentence to the member.
        return self.callback_type in (DEFERRED_CHANNEL_MESSAGE, UPDATE_MESSAGE) and bool(
            self.followups
        )


class FakeDiscord:
    """REST under ``/api/v10`` and the gateway under ``/gateway`` on one 127.0.0.1 port."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.identifies: list[Json] = []
        self.commands: dict[int | None, list[Json]] = {}  # None: global, else a guild id
        self.sync_count = 0
        self.refuse_sync = False
        self.exchanges: dict[str, Exchange] = {}
        self.late_callbacks: list[Exchange] = []
        """Interactions whose answer came after ACK_SECONDS and was refused, as Discord does."""
        self._ids = itertools.count(1200000000000000000)
        self._sockets: list[web.WebSocketResponse] = []
        self._shards: dict[web.WebSocketResponse, tuple[int, int]] = {}  # socket: (id, count)
        self._ready = asyncio.Event()
        self._seq = 0
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.files: dict[str, bytes] = {}
        """Attachments members handed to commands, by id (served as Discord's CDN would)."""
        self.guilds: dict[int, Guild] = {}
        """Guilds the bot is in, sent to it as GUILD_CREATE (those made by add_guild)."""
        self.reactions: list[tuple[int, int, str]] = []
        """(channel, message, emoji) of every reaction the bot added."""
        self.sent: dict[int, list[Json]] = {}
        """Messages the bot posted in each channel (not interaction answers)."""
        self.tag_edits: list[tuple[int, list[int]]] = []
        """(post, its tags) of every change of a forum post's tags by the bot."""

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/attachments/{id}/{filename}", self._attachment)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        for socket in list(self._sockets):
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    def env(self) -> dict[str, str]:
        """What the bot process needs to talk to this fake instead of Discord."""
        return {
            "DISCORD_TOKEN": TOKEN,
            "DISCORD_API_BASE": self.api_base,
            "DISCORD_GATEWAY_URL": self.gateway_url,
        }

    def next_id(self) -> int:
        return next(self._ids)

    def reset_connection(self) -> None:
        """Forget the last session, e.g. before starting the bot process again."""
        self._ready = asyncio.Event()

    async def wait_ready(self) -> None:
        """Until the bot has identified on the gateway (it loads the model first)."""
        await asyncio.wait_for(self._ready.wait(), READY_SECONDS)

    async def wait_shards(self, count: int) -> None:
        """Until shards 0 .. count - 1 of ``count`` are all connected (from any processes)."""
        deadline = time.monotonic() + READY_SECONDS
        while sorted(self._shards.values()) != [(i, count) for i in range(count)]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"connected shards: {sorted(self._shards.values())}")
            await asyncio.sleep(0.05)

    def _socket_for(self, guild_id: int | None, shard: int | None) -> web.WebSocketResponse:
        """The socket Discord would use: the guild's shard, ``(guild_id >> 22) % count``."""
        assert self._sockets, "the bot is not connected to the gateway"
        if not self._shards:
            return self._sockets[-1]
        count = next(iter(self._shards.values()))[1]
        if shard is None:
            shard = 0 if guild_id is None else (guild_id >> 22) % count
        # The newest connection of that shard: an old one may linger while a bot restarts.
        return next(s for s, (i, _) in reversed(self._shards.items()) if i == shard)

    # -- REST -------------------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        body: Any = None
        if request.content_type.startswith("multipart/"):
            body = await _multipart(request)
        elif request.can_read_body:
            raw = await request.read()
            body = json.loads(raw) if raw and request.content_type == "application/json" else raw
        path = "/" + request.match_info["tail"]
        self.requests.append(
            Recorded(request.method, path, dict(request.query), body, time.monotonic())
        )
        parts = path.strip("/").split("/")
        is_webhook = parts[0] in ("webhooks", "interactions")
        if not is_webhook and request.headers.get("Authorization") != f"Bot {TOKEN}":
            return _json({"message": "401: Unauthorized", "code": 0}, 401)
        route = (request.method, *parts)
        match route:
            case ("GET", "users", "@me"):
                return _json(user_payload(BOT_USER_ID, "zsl-test-bot", bot=True))
            case ("GET", "oauth2", "applications", "@me"):
                return _json(self._application())
            case ("GET", "gateway", "bot"):
                return _json(
                    {
                        "url": self.gateway_url,
                        "shards": 1,
                        "session_start_limit": {
                            "total": 1000,
                            "remaining": 999,
                            "reset_after": 0,
                            "max_concurrency": 1,
                        },
                    }
                )
            case ("GET", "gateway"):
                return _json({"url": self.gateway_url})
            case ("PUT", "applications", *_) if self.refuse_sync:
                return _json({"message": "Invalid Form Body", "code": 50035, "errors": {}}, 400)
            case ("PUT", "applications", _, "commands"):
                return _json(self._sync(None, body))
            case ("PUT", "applications", _, "guilds", guild, "commands"):
                return _json(self._sync(int(guild), body))
            case ("GET", "applications", _, "commands"):
                return _json(self.commands.get(None, []))
            case ("POST", "interactions", interaction_id, token, "callback"):
                return self._callback(interaction_id, token, body, request.query)
            case ("POST", "webhooks", _, token):
                return self._followup(token, body)
            case ("PATCH", "webhooks", _, token, "messages", _):
                return self._followup(token, body)
            case ("DELETE", "webhooks", _, token, "messages", "@original"):
                return self._delete_original(token)
            case ("PUT", "channels", channel, "messages", message, "reactions", emoji, "@me"):
                return self._react(int(channel), int(message), emoji)
            case ("POST", "channels", channel, "messages"):
                return self._post(int(channel), body)
            case ("PATCH", "channels", channel):
                return self._edit_post(int(channel), body)
            case _:
                return _json(
                    {"message": "404: Not Found (the fake has no such route)", "code": 0}, 404
                )

    def _application(self) -> Json:
        return {
            "id": str(APPLICATION_ID),
            "name": "zsl-test",
            "icon": None,
            "description": "",
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": user_payload(1000, "owner"),
            "verify_key": "0" * 64,
            "flags": 0,
            "summary": "",
        }

    def _sync(self, guild_id: int | None, body: list[Json]) -> list[Json]:
        self.sync_count += 1
        stored = []
        for command in body:
            entry = {
                **command,
                "id": str(self.next_id()),
                "application_id": str(APPLICATION_ID),
                "version": str(self.next_id()),
            }
            entry.setdefault("description", "")
            if guild_id is not None:
                entry["guild_id"] = str(guild_id)
            stored.append(entry)
        self.commands[guild_id] = stored
        return stored

    def _callback(
        self, interaction_id: str, token: str, body: Json, query: Mapping[str, str]
    ) -> web.Response:
        exchange = self.exchanges.get(token)
        if exchange is None:
            return _json({"message": "Unknown interaction", "code": 10062}, 404)
        if exchange.callback is None and time.monotonic() - exchange.sent_at > ACK_SECONDS:
            # Discord's real answer to a first response after 3 s; the member sees "The
            # application did not respond".
            exchange.late_callback_at = time.monotonic()
            self.late_callbacks.append(exchange)
            exchange.changed.set()
            return _json({"message": "Unknown interaction", "code": 10062}, 404)
        if exchange.callback is not None:
            return _json(
                {"message": "Interaction has already been acknowledged.", "code": 40060}, 400
            )
        exchange.callback = body
        exchange.callback_at = time.monotonic()
        exchange.callback_query = dict(query)
        exchange.changed.set()
        kind = int(body["type"])
        data = body.get("data") or {}
        interaction: Json = {"id": interaction_id, "type": 2}
        resource: Json = {"type": kind}
        if kind in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE):
            message = self._message(
                data if kind == CHANNEL_MESSAGE else {"flags": data.get("flags")}
            )
            interaction["response_message_id"] = exchange.message_id = message["id"]
            interaction["response_message_loading"] = kind == DEFERRED_CHANNEL_MESSAGE
            interaction["response_message_ephemeral"] = bool(
                int(data.get("flags") or 0) & EPHEMERAL
            )
            resource["message"] = message
        elif kind == UPDATE_MESSAGE and exchange.parent is not None:
            # Edits the message that holds the clicked control, e.g. to take the controls off.
            parent = exchange.parent
            shown = parent.message
            for key in ("content", "embeds", "components"):
                if key in data:
                    shown[key] = data[key]
            interaction["response_message_id"] = parent.message_id
            resource["message"] = self._message(shown) | {"id": parent.message_id}
        return _json({"interaction": interaction, "resource": resource})

    def _delete_original(self, token: str) -> web.Response:
        exchange = self.exchanges.get(token)
        if exchange is None or exchange.callback is None:
            return _json({"message": "Unknown Message", "code": 10008}, 404)
        exchange.deleted_original = True
        exchange.changed.set()
        return web.Response(status=204)

    def _followup(self, token: str, body: Json) -> web.Response:
        exchange = self.exchanges.get(token)
        if exchange is None or exchange.callback is None:
            # An interaction that was never acknowledged has no webhook to follow up on.
            return _json({"message": "Unknown Webhook", "code": 10015}, 404)
        exchange.followups.append(body)
        exchange.followup_at = time.monotonic()
        exchange.changed.set()
        return _json(self._message(body))

    def _message(self, data: Json) -> Json:
        return message_json(
            self.next_id(),
            1,
            data.get("content") or "",
            user_payload(BOT_USER_ID, "zsl-test-bot", bot=True),
            type=20,
            embeds=data.get("embeds") or [],
            flags=int(data.get("flags") or 0),
            components=data.get("components") or [],
            webhook_id=str(APPLICATION_ID),
            application_id=str(APPLICATION_ID),
        )

    async def _attachment(self, request: web.Request) -> web.Response:
        content = self.files.get(request.match_info["id"])
        if content is None:
            return web.Response(status=404)
        return web.Response(body=content, content_type="application/octet-stream")

    def attach(self, filename: str, content: bytes) -> tuple[str, Json]:
        """A file a member attaches to a command option: its id (the option's value) and the
        attachment as Discord resolves it."""
        attachment_id = str(self.next_id())
        self.files[attachment_id] = content
        url = f"http://127.0.0.1:{self.port}/attachments/{attachment_id}/{filename}"
        return attachment_id, {
            "id": attachment_id,
            "filename": filename,
            "size": len(content),
            "url": url,
            "proxy_url": url,
            "content_type": "application/json",
        }

    # -- guilds, channels and messages ------------------------------------------------------------

    def _channel_guild(self, channel_id: int) -> Guild | None:
        return next(
            (
                g
                for g in self.guilds.values()
                if channel_id in g.channels or channel_id in g.threads
            ),
            None,
        )

    def _missing(self, channel_id: int, needs: int) -> web.Response | None:
        """Discord's refusal when the bot lacks ``needs`` in the channel, else None."""
        guild = self._channel_guild(channel_id)
        if guild is None:
            return _json({"message": "Unknown Channel", "code": 10003}, 404)
        if guild.allowed(channel_id) & needs != needs:
            return _json({"message": "Missing Permissions", "code": 50013}, 403)
        return None

    def _react(self, channel_id: int, message_id: int, emoji: str) -> web.Response:
        refused = self._missing(channel_id, VIEW_CHANNEL | ADD_REACTIONS | READ_MESSAGE_HISTORY)
        if refused is not None:
            return refused
        self.reactions.append((channel_id, message_id, unquote(emoji)))
        return web.Response(status=204)

    def _edit_post(self, thread_id: int, body: Json) -> web.Response:
        guild = self._channel_guild(thread_id)
        if guild is None or thread_id not in guild.threads:
            return _json({"message": "Unknown Channel", "code": 10003}, 404)
        refused = self._missing(thread_id, VIEW_CHANNEL | MANAGE_THREADS)
        if refused is not None:
            return refused
        thread = guild.threads[thread_id]
        if "applied_tags" in body:
            thread["applied_tags"] = [str(t) for t in body["applied_tags"]]
            self.tag_edits.append((thread_id, [int(t) for t in body["applied_tags"]]))
        return _json(thread)

    def _post(self, channel_id: int, body: Json) -> web.Response:
        in_thread = any(channel_id in g.threads for g in self.guilds.values())
        needs = VIEW_CHANNEL | (SEND_MESSAGES_IN_THREADS if in_thread else SEND_MESSAGES)
        refused = self._missing(channel_id, needs)
        if refused is not None:
            return refused
        message = self._message(body) | {"channel_id": str(channel_id)}
        self.sent.setdefault(channel_id, []).append(body | {"id": message["id"]})
        return _json(message)

    async def add_guild(
        self,
        guild_id: int,
        channels: Mapping[int, str],
        forums: Mapping[int, tuple[str, list[str]]] | None = None,
    ) -> Guild:
        """A guild with text channels (id: name) and forums (id: (name, tag names)) where the
        bot's role has BOT_PERMISSIONS; sent to the bot now if it is connected, else when it
        identifies. A forum's tags get the ids forum id + 1, + 2, ..."""
        guild = Guild(guild_id, dict(channels))
        for forum_id, (name, tags) in (forums or {}).items():
            guild.channels[forum_id] = name
            guild.forums[forum_id] = [
                {
                    "id": str(forum_id + number),
                    "name": tag,
                    "moderated": False,
                    "emoji_id": None,
                    "emoji_name": None,
                }
                for number, tag in enumerate(tags, start=1)
            ]
        self.guilds[guild_id] = guild
        if self._shards:
            await self._dispatch(self._socket_for(guild_id, None), "GUILD_CREATE", guild.payload())
        return guild

    async def deny(self, guild_id: int, channel_id: int, permissions: int) -> None:
        """Take ``permissions`` from the bot in one channel (an overwrite for its member), as
        an admin editing the channel would: the bot hears CHANNEL_UPDATE."""
        guild = self.guilds[guild_id]
        guild.denied[channel_id] = guild.denied.get(channel_id, 0) | permissions
        if not self._shards:  # not connected: the guild is sent whole when the bot identifies
            return
        await self._dispatch(
            self._socket_for(guild_id, None), "CHANNEL_UPDATE", guild.channel_payload(channel_id)
        )

    async def post(
        self,
        guild_id: int,
        channel_id: int,
        content: str,
        *,
        author_id: int = 4242,
        bot: bool = False,
        message_id: int | None = None,
    ) -> int:
        """A member (or another bot) writes a message: MESSAGE_CREATE; returns its id."""
        message_id = message_id or self.next_id()
        author = user_payload(author_id, f"user{author_id}", bot=bot)
        data = message_json(
            message_id,
            channel_id,
            content,
            author,
            guild_id=str(guild_id),
            member={"roles": [], "joined_at": _now(), "deaf": False, "mute": False, "flags": 0},
        )
        await self._dispatch(self._socket_for(guild_id, None), "MESSAGE_CREATE", data)
        return message_id

    async def edit(self, guild_id: int, channel_id: int, message_id: int, content: str) -> None:
        """A member edits their message: MESSAGE_UPDATE with the new text."""
        data = message_json(
            message_id,
            channel_id,
            content,
            user_payload(4242, "user4242"),
            guild_id=str(guild_id),
            edited_timestamp=_now(),
        )
        await self._dispatch(self._socket_for(guild_id, None), "MESSAGE_UPDATE", data)

    async def new_post(
        self,
        guild_id: int,
        forum_id: int,
        title: str,
        content: str,
        *,
        author_id: int = 4242,
        tags: tuple[int, ...] = (),
    ) -> int:
        """A member opens a forum post (with ``tags`` set by them): THREAD_CREATE, then its
        first message's MESSAGE_CREATE, as Discord sends them; returns the post's id."""
        guild = self.guilds[guild_id]
        thread_id = self.next_id()
        thread = {
            "id": str(thread_id),
            "type": 11,
            "guild_id": str(guild_id),
            "parent_id": str(forum_id),
            "owner_id": str(author_id),
            "name": title,
            "applied_tags": [str(t) for t in tags],
            "last_message_id": str(thread_id),
            "rate_limit_per_user": 0,
            "message_count": 0,
            "member_count": 1,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": 4320,
                "archive_timestamp": _now(),
                "locked": False,
                "create_timestamp": _now(),
            },
            "newly_created": True,
        }
        guild.threads[thread_id] = thread
        socket = self._socket_for(guild_id, None)
        await self._dispatch(socket, "THREAD_CREATE", thread)
        await self.post(guild_id, thread_id, content, author_id=author_id, message_id=thread_id)
        return thread_id

    async def wait_for(self, condition: Any, within: float = ANSWER_SECONDS) -> None:
        """Until ``condition()`` holds (the bot acts on events in its own time)."""
        deadline = time.monotonic() + within
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {within} s: {condition}")
            await asyncio.sleep(0.05)

    # -- gateway ----------------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.append(socket)
        await socket.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}}))
        try:
            async for message in socket:
                if message.type != WSMsgType.TEXT:
                    break
                payload = json.loads(message.data)
                if payload["op"] == 1:  # heartbeat
                    await socket.send_str(json.dumps({"op": 11}))
                elif payload["op"] == 2:  # identify
                    self.identifies.append(payload["d"])
                    shard_id, shard_count = payload["d"].get("shard", [0, 1])
                    self._shards[socket] = (shard_id, shard_count)
                    await self._dispatch(socket, "READY", self._ready_payload(payload["d"]))
                    for guild in self.guilds.values():
                        if shard_count == 1 or (guild.id >> 22) % shard_count == shard_id:
                            await self._dispatch(socket, "GUILD_CREATE", guild.payload())
                    self._ready.set()
                elif payload["op"] == 6:  # resume
                    await self._dispatch(socket, "RESUMED", {})
        finally:
            self._sockets.remove(socket)
            self._shards.pop(socket, None)
        return socket

    def _ready_payload(self, identify: Json) -> Json:
        return {
            "v": 10,
            "user": user_payload(BOT_USER_ID, "zsl-test-bot", bot=True),
            "guilds": [],
            "session_id": f"session-{self.next_id()}",
            "resume_gateway_url": self.gateway_url,
            "shard": identify.get("shard", [0, 1]),
            "application": {"id": str(APPLICATION_ID), "flags": 0},
        }

    async def _dispatch(self, socket: web.WebSocketResponse, event: str, data: Json) -> None:
        self._seq += 1
        await socket.send_str(json.dumps({"op": 0, "t": event, "s": self._seq, "d": data}))

    # -- driving interactions ---------------------------------------------------------------------

    def synced(self, name: str, guild_id: int | None) -> tuple[Json, int | None]:
        """The synced command called ``name`` visible in ``guild_id``, and its scope."""
        scopes = (guild_id, None) if guild_id is not None else (None,)
        for scope in scopes:
            for command in self.commands.get(scope, []):
                if command["name"] == name:
                    return command, scope
        raise AssertionError(f"the bot never synced a command named {name!r}")

    def _options(
        self, command: Json, options: Mapping[str, Any], focused: str | None
    ) -> list[Json]:
        declared = {option["name"]: option for option in command.get("options", [])}
        result = []
        for name, value in options.items():
            if name not in declared:
                raise AssertionError(f"/{command['name']} has no option {name!r}")
            kind = declared[name]["type"]
            if kind == CHANNEL_OPTION:
                value = str(value)  # Discord sends ids as strings
            option: Json = {"name": name, "type": kind, "value": value}
            if name == focused:
                option["focused"] = True
            result.append(option)
        return result

    async def interact(
        self,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        guild_id: int | None,
        user_id: int,
        admin: bool = False,
        focused: str | None = None,
        target_message: Json | None = None,
        files: Mapping[str, tuple[str, bytes]] | None = None,
        channel_id: int | None = None,
        shard: int | None = None,
        wait: float = ANSWER_SECONDS,
    ) -> Exchange:
        """Send an INTERACTION_CREATE as a member would trigger it; wait for the bot's answer.

        ``files``: attachment options, as option name -> (filename, content); ``channel_id``:
        the channel the command is typed in (default: a new one).

        ``focused`` makes it an autocomplete request for that option; ``target_message``
        makes it a message context menu invocation. It goes to the guild's shard, or to
        ``shard`` (as after resharding, when a guild moves to another process). ``wait`` is
        how long the final answer (a follow-up after a defer) may take.
        """
        command, scope = self.synced(name, guild_id)
        data: Json = {"id": command["id"], "name": name, "type": command.get("type", 1)}
        if scope is not None:
            data["guild_id"] = str(scope)
        if target_message is not None:
            data["target_id"] = target_message["id"]
            data["resolved"] = {"messages": {target_message["id"]: target_message}}
        else:
            options = dict(options or {})
            resolved: dict[str, Json] = {}
            # An attachment may also be given among the options, as (filename, content).
            files = {**{k: v for k, v in options.items() if isinstance(v, tuple)}, **(files or {})}
            for name, (filename, content) in files.items():
                options[name], resolved[options[name]] = self.attach(filename, content)
            data["options"] = self._options(command, options, focused)
            if resolved:
                data["resolved"] = {"attachments": resolved}
            channels = {
                str(option["value"]): self._resolved_channel(int(option["value"]))
                for option in data["options"]
                if option["type"] == CHANNEL_OPTION
            }
            if channels:
                data.setdefault("resolved", {})["channels"] = channels
        return await self._send(
            4 if focused else 2,
            data,
            guild_id=guild_id,
            user_id=user_id,
            admin=admin,
            shard=shard,
            wait=wait,
            channel_id=channel_id,
        )

    def _thread(self, guild_id: int, channel_id: int) -> Json | None:
        guild = self.guilds.get(guild_id)
        return None if guild is None else guild.threads.get(channel_id)

    def _resolved_channel(self, channel_id: int) -> Json:
        guild = self._channel_guild(channel_id)
        name = guild.channels[channel_id] if guild is not None else "unknown"
        return {
            "id": str(channel_id),
            "type": 15 if guild is not None and channel_id in guild.forums else 0,
            "name": name,
            "permissions": str(ADMIN_PERMISSIONS),
            "parent_id": None,
            "guild_id": str(guild.id if guild is not None else 0),
        }

    async def click(
        self, channel_id: int, message: Json, *, guild_id: int, user_id: int, admin: bool = False
    ) -> Exchange:
        """Click the first button under a message the bot posted in a channel (fake.sent)."""
        buttons = [c for row in message.get("components") or [] for c in row["components"]]
        assert buttons, f"no button under {message}"
        data: Json = {"custom_id": buttons[0]["custom_id"], "component_type": 2}
        shown = self._message(message) | {"id": message["id"], "channel_id": str(channel_id)}
        return await self._send(
            3,
            data,
            guild_id=guild_id,
            user_id=user_id,
            admin=admin,
            message=shown,
            channel_id=channel_id,
        )

    async def press(
        self,
        exchange: Exchange,
        component_type: int,
        *,
        guild_id: int,
        user_id: int,
        admin: bool = False,
        values: list[str] | None = None,
    ) -> Exchange:
        """Click a button (2) or pick from a select menu (3) under the bot's reply."""
        assert exchange.message_id is not None, "the reply created no message"
        components = exchange.message.get("components") or []
        matching = [
            c
            for row in components
            for c in row.get("components", [])
            if c["type"] == component_type
        ]
        assert matching, f"no component of type {component_type} under {exchange.message}"
        data: Json = {"custom_id": matching[0]["custom_id"], "component_type": component_type}
        if values is not None:
            data["values"] = values
        message = self._message(exchange.message) | {"id": exchange.message_id}
        return await self._send(
            3,
            data,
            guild_id=guild_id,
            user_id=user_id,
            admin=admin,
            message=message,
            parent=exchange,
        )

    async def _send(
        self,
        kind: int,
        data: Json,
        *,
        guild_id: int | None,
        user_id: int,
        admin: bool,
        message: Json | None = None,
        shard: int | None = None,
        wait: float = ANSWER_SECONDS,
        parent: Exchange | None = None,
        channel_id: int | None = None,
    ) -> Exchange:
        interaction_id = self.next_id()
        token = f"interaction-token-{interaction_id}"
        channel_id = channel_id or self.next_id()
        user = user_payload(user_id, f"user{user_id}")
        payload: Json = {
            "id": str(interaction_id),
            "application_id": str(APPLICATION_ID),
            "type": kind,
            "token": token,
            "version": 1,
            "attachment_size_limit": 8 * 1024 * 1024,
            "locale": "en-US",
            "entitlements": [],
            "app_permissions": str(ADMIN_PERMISSIONS),
            "data": data,
        }
        if message is not None:
            payload["message"] = message
        if guild_id is not None:
            payload |= {
                "guild_id": str(guild_id),
                "guild_locale": "en-US",
                "context": 0,
                "authorizing_integration_owners": {"0": str(guild_id)},
                "channel_id": str(channel_id),
                "channel": self._thread(guild_id, channel_id)
                or {
                    "id": str(channel_id),
                    "type": 0,
                    "guild_id": str(guild_id),
                    "name": "general",
                    "position": 0,
                    "permission_overwrites": [],
                    "nsfw": False,
                    "parent_id": None,
                },
                "member": {
                    "user": user,
                    "roles": [],
                    "joined_at": _now(),
                    "deaf": False,
                    "mute": False,
                    "flags": 0,
                    "permissions": str(ADMIN_PERMISSIONS if admin else MEMBER_PERMISSIONS),
                },
            }
        else:
            payload |= {
                "context": 1,
                "authorizing_integration_owners": {"1": str(user_id)},
                "channel_id": str(channel_id),
                "channel": {"id": str(channel_id), "type": 1, "recipients": [user]},
                "user": user,
            }
        exchange = Exchange(sent_at=time.monotonic(), parent=parent)
        self.exchanges[token] = exchange
        await self._dispatch(self._socket_for(guild_id, shard), "INTERACTION_CREATE", payload)
        deadline = time.monotonic() + wait
        while not exchange.is_final():
            if exchange.late_callback_at is not None:
                late = exchange.late_callback_at - exchange.sent_at
                raise AssertionError(
                    f"Discord refused the answer, sent {late:.1f} s after the interaction "
                    f"(10062 Unknown interaction): {data}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no answer within {wait} s: {data} {exchange}")
            exchange.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(exchange.changed.wait(), remaining)
        return exchange

    def message_payload(self, content: str, *, guild_id: int, author_id: int = 4242) -> Json:
        """A message as Discord resolves it for a message context menu."""
        return message_json(
            self.next_id(),
            self.next_id(),
            content,
            user_payload(author_id, f"user{author_id}"),
            guild_id=str(guild_id),
        )
