"""A local Discord look-alike for running the real discord.py client with no Discord account.

It speaks real HTTP (REST under ``/api/v10``) and a real gateway websocket
(``/gateway``) on 127.0.0.1. Start it with :class:`Sandbox` (in-process) or
``python -m sandbox --port 8765`` (standalone), then point discord.py at it
with the two overrides that :func:`client_overrides` sets::

    discord.http.Route.BASE = f"http://127.0.0.1:{port}/api/v10"
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(f"ws://127.0.0.1:{port}/gateway")

Modules: ``models`` (the model and permission maths), ``world`` (the world that holds it:
lookups and building), ``payloads`` (every JSON payload), ``gateway`` (the websocket),
``server``/``rest``/``rest_messages`` (the HTTP API), ``core`` (world changes that become
gateway events), ``interactions`` (slash commands, buttons, replies) and
``interaction_handle`` (what a test holds of one), ``commands`` (synced commands and their
visibility), ``limits`` (rate limits and faults), ``validation`` (message limits),
``records`` (what was seen, and waiting on it), ``control`` (the ``/_sandbox/`` API for
humans), ``scenario``, ``injections`` and ``readback`` (the :class:`Sandbox`), ``client``
(pointing discord.py at it), ``clock`` (the time windows' clock, which tests advance),
``persistence`` and ``world_codec`` (keeping the world in a data directory across
restarts), ``oauth``, ``oauth_routes`` and ``oauth_pages`` (OAuth2 login: the consent page,
the token endpoints, a user's Bearer token).
"""

from .client import api_base, client_overrides, gateway_url
from .config import SandboxConfig
from .errors import ApiError, CommandRefused, NoGatewaySession, SandboxError
from .gateway import GatewaySession
from .interaction_handle import InteractionHandle, Reply
from .models import Channel, Guild, Member, MemberFlag, Message, Role, User
from .oauth import OAuth, OAuthError, Token
from .permissions import ALL_PERMISSIONS, Intent, Perm
from .persistence import WorldFileError
from .records import Call, NonceHit, RoleChange
from .scenario import Sandbox

__all__ = [
    "ALL_PERMISSIONS",
    "ApiError",
    "Call",
    "Channel",
    "CommandRefused",
    "GatewaySession",
    "Guild",
    "Intent",
    "InteractionHandle",
    "Member",
    "MemberFlag",
    "Message",
    "NoGatewaySession",
    "NonceHit",
    "OAuth",
    "OAuthError",
    "Perm",
    "Reply",
    "Role",
    "RoleChange",
    "Sandbox",
    "SandboxConfig",
    "SandboxError",
    "Token",
    "User",
    "WorldFileError",
    "api_base",
    "client_overrides",
    "gateway_url",
]
