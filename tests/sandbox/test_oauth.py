"""The sandbox's OAuth2, over real HTTP: consent page, token endpoints, a user's Bearer token."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import pytest_asyncio

from sandbox import Guild, Sandbox, SandboxConfig

pytestmark = pytest.mark.asyncio

CALLBACK = "http://127.0.0.1:9999/console/auth/callback"
VERIFIER = "a-pkce-verifier-that-is-long-enough-for-rfc-7636-0123456789"
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=")


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest_asyncio.fixture
async def app(sandbox: Sandbox, guild: Guild, http: aiohttp.ClientSession) -> dict[str, Any]:
    """The application's OAuth2 settings, with CALLBACK registered through the control API."""
    async with http.post(
        sandbox.base_url + "/_sandbox/oauth/app", json={"redirect_uris": [CALLBACK]}
    ) as resp:
        assert resp.status == 200
        return dict(await resp.json())


def basic(app: dict[str, Any], secret: str | None = None) -> dict[str, str]:
    raw = f"{app['client_id']}:{secret or app['client_secret']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def page_query(app: dict[str, Any], **overrides: str) -> dict[str, str]:
    query = {
        "response_type": "code",
        "client_id": app["client_id"],
        "scope": "identify guilds",
        "redirect_uri": CALLBACK,
        "state": "st-123",
        "code_challenge": CHALLENGE.decode(),
        "code_challenge_method": "S256",
        "prompt": "consent",
    }
    return query | overrides


async def token(
    sandbox: Sandbox, http: aiohttp.ClientSession, form: dict[str, str], headers: Any = None
) -> tuple[int, dict[str, Any]]:
    async with http.post(sandbox.api_url + "/oauth2/token", data=form, headers=headers) as resp:
        return resp.status, await resp.json()


async def login(
    sandbox: Sandbox, http: aiohttp.ClientSession, app: dict[str, Any], user_id: int,
    scope: str = "identify",
) -> dict[str, Any]:
    code = sandbox.oauth.authorize(user_id, CALLBACK, scope).value
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    status, body = await token(sandbox, http, form, basic(app))
    assert status == 200, body
    return body


async def get(sandbox: Sandbox, http: aiohttp.ClientSession, path: str, auth: str) -> Any:
    async with http.get(sandbox.api_url + path, headers={"Authorization": auth}) as resp:
        return resp.status, await resp.json()


async def test_a_user_logs_in_through_the_consent_page(sandbox, guild, app, http):
    alice = sandbox.member_join(guild, None, "alice")
    async with http.get(sandbox.base_url + "/oauth2/authorize", params=page_query(app)) as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
        page = await resp.text()
    assert "Lifeline wants to access your account" in page
    assert f'value="{alice.id}"' in page and f'value="{guild.owner_id}"' in page
    assert f'name="user_id" value="{sandbox.bot_user.id}"' not in page  # users, not bots
    assert "<script" not in page and "src=" not in page and "href=" not in page
    form = page_query(app) | {"user_id": str(alice.id), "action": "authorize"}
    async with http.post(
        sandbox.base_url + "/oauth2/authorize", data=form, allow_redirects=False
    ) as resp:
        assert resp.status == 302
        location = resp.headers["Location"]
    assert location.startswith(CALLBACK + "?")
    params = parse_qs(urlsplit(location).query)
    assert params["state"] == ["st-123"]

    exchange = {
        "grant_type": "authorization_code", "code": params["code"][0],
        "redirect_uri": CALLBACK, "code_verifier": VERIFIER,
    }
    status, grant = await token(sandbox, http, exchange, basic(app))
    assert status == 200
    assert grant["token_type"] == "Bearer" and grant["expires_in"] == 604800
    assert grant["scope"] == "identify guilds" and grant["refresh_token"]

    status, me = await get(sandbox, http, "/users/@me", f"Bearer {grant['access_token']}")
    assert status == 200
    assert me["id"] == str(alice.id) and me["username"] == "alice"
    assert me["discriminator"] == "0" and "email" not in me
    status, bot = await get(sandbox, http, "/users/@me", f"Bot {sandbox.token}")
    assert status == 200 and bot["id"] == str(sandbox.bot_user.id)


async def test_cancel_redirects_with_access_denied(sandbox, guild, app, http):
    form = page_query(app) | {"user_id": str(guild.owner_id), "action": "cancel"}
    async with http.post(
        sandbox.base_url + "/oauth2/authorize", data=form, allow_redirects=False
    ) as resp:
        assert resp.status == 302
        params = parse_qs(urlsplit(resp.headers["Location"]).query)
    assert params["error"] == ["access_denied"] and params["state"] == ["st-123"]
    assert "code" not in params and not sandbox.oauth.codes


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"client_id": "1234"}, "unknown client_id"),
        ({"redirect_uri": "http://127.0.0.1:9999/elsewhere"}, "not registered"),
        ({"response_type": "token"}, "unsupported response_type"),
        ({"scope": "identify bot"}, "invalid scope"),
        ({"scope": ""}, "scope is required"),
        ({"code_challenge_method": "plain"}, "S256"),
        ({"code_challenge_method": ""}, "S256"),
    ],
)
async def test_a_bad_request_gets_a_page_and_no_redirect(
    sandbox, guild, app, http, override, reason
):
    query = page_query(app, **override)
    async with http.get(
        sandbox.base_url + "/oauth2/authorize", params=query, allow_redirects=False
    ) as resp:
        assert resp.status == 400 and "Location" not in resp.headers
        assert reason in await resp.text()
    form = query | {"user_id": str(guild.owner_id), "action": "authorize"}
    async with http.post(
        sandbox.base_url + "/oauth2/authorize", data=form, allow_redirects=False
    ) as resp:
        assert resp.status == 400 and "Location" not in resp.headers
    assert not sandbox.oauth.codes


async def test_the_page_escapes_what_it_shows(sandbox, guild, app, http):
    sandbox.member_join(guild, None, "<script>alert(1)</script>")
    query = page_query(app, state='"><script>alert(2)</script>')
    async with http.get(sandbox.base_url + "/oauth2/authorize", params=query) as resp:
        page = await resp.text()
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&quot;&gt;&lt;script" in page


async def test_a_code_works_once_and_reuse_revokes_its_tokens(sandbox, guild, app, http):
    code = sandbox.oauth.authorize(guild.owner_id, CALLBACK, "identify").value
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    status, first = await token(sandbox, http, form, basic(app))
    assert status == 200
    refresh = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    status, grant = await token(sandbox, http, refresh, basic(app))
    assert status == 200
    status, error = await token(sandbox, http, form, basic(app))
    assert status == 400 and error["error"] == "invalid_grant"
    status, _ = await get(sandbox, http, "/users/@me", f"Bearer {grant['access_token']}")
    assert status == 401
    assert [t.revoked for t in sandbox.oauth_tokens] == ["refresh", "code_reuse"]


async def test_a_code_expires_after_ten_minutes(sandbox, guild, app, http):
    code = sandbox.oauth.authorize(guild.owner_id, CALLBACK).value
    sandbox.advance_clock(601)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    status, error = await token(sandbox, http, form, basic(app))
    assert status == 400 and error["error"] == "invalid_grant"
    assert not sandbox.oauth_tokens


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"redirect_uri": CALLBACK + "/other"}, "invalid_grant"),
        ({"code_verifier": "not-the-verifier"}, "invalid_grant"),
        ({"code_verifier": None}, "invalid_grant"),
        ({"code_verifier": "é" * 50}, "invalid_grant"),
        ({"code_verifier": VERIFIER[:42]}, "invalid_grant"),
        ({"redirect_uri": None}, "invalid_request"),
        ({"code": "no-such-code"}, "invalid_grant"),
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"grant_type": None}, "invalid_request"),
    ],
)
async def test_a_bad_exchange_is_refused_as_rfc_6749_says(sandbox, guild, app, http, fields, error):
    code = sandbox.oauth.authorize(
        guild.owner_id, CALLBACK, code_challenge=CHALLENGE.decode()
    ).value
    form = {
        "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
        "code_verifier": VERIFIER,
    } | fields
    sent = {k: v for k, v in form.items() if v is not None}
    status, body = await token(sandbox, http, sent, basic(app))
    assert (status, body["error"]) == (400, error)
    assert not sandbox.oauth_tokens


async def test_the_client_authenticates_by_basic_or_in_the_body(sandbox, guild, app, http):
    def form() -> dict[str, str]:
        code = sandbox.oauth.authorize(guild.owner_id, CALLBACK).value
        return {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}

    status, body = await token(sandbox, http, form(), basic(app, "wrong"))
    assert (status, body) == (401, {"error": "invalid_client"})
    status, body = await token(sandbox, http, form())
    assert (status, body) == (401, {"error": "invalid_client"})
    not_ascii = form() | {"client_id": app["client_id"], "client_secret": "sécret"}
    assert (await token(sandbox, http, not_ascii))[0] == 401
    in_body = form() | {"client_id": app["client_id"], "client_secret": app["client_secret"]}
    status, body = await token(sandbox, http, in_body)
    assert status == 200 and body["token_type"] == "Bearer"
    async with http.post(
        sandbox.api_url + "/oauth2/token", json=form(), headers=basic(app)
    ) as resp:
        assert resp.status == 400 and (await resp.json())["error"] == "invalid_request"
    recorded = sandbox.calls_to("POST", "/oauth2/token")
    assert len(recorded) == 5
    assert recorded[3].json["client_secret"] == "[redacted]"
    assert app["client_secret"] not in repr(sandbox.calls)


async def test_refresh_replaces_both_tokens(sandbox, guild, app, http):
    first = await login(sandbox, http, app, guild.owner_id, "identify guilds")
    refresh = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    status, second = await token(sandbox, http, refresh, basic(app))
    assert status == 200 and second["access_token"] != first["access_token"]
    assert second["scope"] == "identify guilds"
    assert (await get(sandbox, http, "/users/@me", f"Bearer {first['access_token']}"))[0] == 401
    assert (await get(sandbox, http, "/users/@me", f"Bearer {second['access_token']}"))[0] == 200
    status, body = await token(sandbox, http, refresh, basic(app))
    assert (status, body["error"]) == (400, "invalid_grant")

    wider = {"grant_type": "refresh_token", "refresh_token": second["refresh_token"],
             "scope": "identify email"}
    status, body = await token(sandbox, http, wider, basic(app))
    assert (status, body["error"]) == (400, "invalid_scope")
    narrower = wider | {"scope": "identify"}
    status, third = await token(sandbox, http, narrower, basic(app))
    assert status == 200 and third["scope"] == "identify"


async def test_revoke_ends_a_token_and_answers_200_for_unknown_ones(sandbox, guild, app, http):
    grant = await login(sandbox, http, app, guild.owner_id)
    url = sandbox.api_url + "/oauth2/token/revoke"
    form = {"token": grant["access_token"], "token_type_hint": "access_token"}
    async with http.post(url, data=form) as resp:
        assert resp.status == 401 and (await resp.json())["error"] == "invalid_client"
    assert sandbox.oauth_tokens[0].revoked is None
    async with http.post(url, data=form, headers=basic(app)) as resp:
        assert resp.status == 200 and await resp.json() == {}
    status, body = await get(sandbox, http, "/users/@me", f"Bearer {grant['access_token']}")
    assert (status, body) == (401, {"message": "401: Unauthorized", "code": 0})
    assert sandbox.oauth_tokens[0].revoked == "revoke"
    refresh = {"grant_type": "refresh_token", "refresh_token": grant["refresh_token"]}
    assert (await token(sandbox, http, refresh, basic(app)))[0] == 400
    async with http.post(url, data={"token": "never-issued"}, headers=basic(app)) as resp:
        assert resp.status == 200 and await resp.json() == {}


async def test_an_access_token_expires_after_a_week(sandbox, guild, app, http):
    grant = await login(sandbox, http, app, guild.owner_id)
    sandbox.advance_clock(604_799)
    assert (await get(sandbox, http, "/users/@me", f"Bearer {grant['access_token']}"))[0] == 200
    sandbox.advance_clock(2)
    assert (await get(sandbox, http, "/users/@me", f"Bearer {grant['access_token']}"))[0] == 401


async def test_a_user_token_is_refused_on_bot_routes(sandbox, guild, app, http):
    grant = await login(sandbox, http, app, guild.owner_id, "identify guilds")
    bearer = f"Bearer {grant['access_token']}"
    for path in (f"/guilds/{guild.id}", f"/guilds/{guild.id}/members/{guild.owner_id}",
                 "/oauth2/applications/@me"):
        status, body = await get(sandbox, http, path, bearer)
        assert (status, body) == (401, {"message": "401: Unauthorized", "code": 0}), path
    calls = sandbox.calls_to("GET", "/guilds/{guild_id}")
    # The record says whose token reached a bot route, for tests of a client's discipline.
    assert calls[-1].bearer_user == str(guild.owner_id) and not calls[-1].authorized


async def test_users_me_needs_identify(sandbox, guild, app, http):
    grant = await login(sandbox, http, app, guild.owner_id, "guilds")
    assert (await get(sandbox, http, "/users/@me", f"Bearer {grant['access_token']}"))[0] == 401
    bearer = f"Bearer {grant['access_token']}"
    status, guilds = await get(sandbox, http, "/users/@me/guilds", bearer)
    assert status == 200 and [g["id"] for g in guilds] == [str(guild.id)]


async def test_my_guilds_are_the_users_own_and_need_the_guilds_scope(sandbox, guild, app, http):
    other = sandbox.create_guild("Other")
    alice = sandbox.member_join(guild, None, "alice")
    narrow = await login(sandbox, http, app, alice.id)
    status, body = await get(sandbox, http, "/users/@me/guilds", f"Bearer {narrow['access_token']}")
    assert (status, body) == (403, {"message": "Missing Access", "code": 50001})

    grant = await login(sandbox, http, app, alice.id, "identify guilds")
    bearer = f"Bearer {grant['access_token']}"
    status, guilds = await get(sandbox, http, "/users/@me/guilds", bearer)
    assert status == 200
    assert guilds == [
        {"id": str(guild.id), "name": guild.name, "icon": None, "banner": None, "owner": False,
         "permissions": str(guild.base_permissions(alice.id)), "features": []}
    ]
    status, mine = await get(sandbox, http, "/users/@me/guilds", f"Bot {sandbox.token}")
    assert status == 200 and {g["id"] for g in mine} == {str(guild.id), str(other.id)}
    me_calls = sandbox.calls_to("GET", "/users/@me/guilds")
    assert [c.bearer_user for c in me_calls] == [str(alice.id), str(alice.id), None]


async def test_the_control_api_logs_a_user_in_without_a_browser(sandbox, guild, app, http):
    base = sandbox.base_url + "/_sandbox/oauth"
    body = {"user_id": str(guild.owner_id), "redirect_uri": CALLBACK, "scope": "identify",
            "state": "s1", "code_challenge": CHALLENGE.decode()}
    async with http.post(base + "/authorize", json=body) as resp:
        assert resp.status == 200
        answer = await resp.json()
    params = parse_qs(urlsplit(answer["redirect_url"]).query)
    assert params == {"code": [answer["code"]], "state": ["s1"]}
    form = {"grant_type": "authorization_code", "code": answer["code"],
            "redirect_uri": CALLBACK, "code_verifier": VERIFIER}
    status, grant = await token(sandbox, http, form, basic(app))
    assert status == 200
    async with http.get(base + "/tokens") as resp:
        tokens = await resp.json()
    assert [(t["access_token"], t["user_id"], t["status"]) for t in tokens] == [
        (grant["access_token"], str(guild.owner_id), "live")
    ]
    for bad in ({"redirect_uri": CALLBACK + "x"}, {"scope": "bot"}, {"user_id": "abc"},
                {"user_id": str(sandbox.bot_user.id)}):
        async with http.post(base + "/authorize", json=body | bad) as resp:
            assert resp.status == 400 and (await resp.json())["error"]
    async with http.get(sandbox.base_url + "/_sandbox/") as resp:
        index = await resp.json()
    assert index["oauth"]["redirect_uris"] == [CALLBACK]
    assert "/_sandbox/oauth/authorize" in [e["path"] for e in index["endpoints"]]


async def test_the_client_secret_and_redirect_uris_come_from_the_config(http):
    config = SandboxConfig(oauth_client_secret="s3cret", oauth_redirect_uris=[CALLBACK])
    async with Sandbox(config) as sandbox:
        guild = sandbox.create_guild("Configured")
        app = {"client_id": str(sandbox.application_id), "client_secret": "s3cret"}
        grant = await login(sandbox, http, app, guild.owner_id)
        assert grant["token_type"] == "Bearer"
        async with http.post(sandbox.base_url + "/_sandbox/oauth/app",
                             json={"client_secret": "rotated"}) as resp:
            assert resp.status == 200
        code = sandbox.oauth.authorize(guild.owner_id, CALLBACK).value
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
        assert (await token(sandbox, http, form, basic(app)))[0] == 401
        app["client_secret"] = "rotated"
        assert (await token(sandbox, http, form, basic(app)))[0] == 200


async def test_my_member_needs_guilds_members_read_and_a_user_token(sandbox, guild, app, http):
    staff = guild.role_named("Staff")
    alice = sandbox.member_join(guild, None, "alice", roles=[staff.id])
    path = f"/users/@me/guilds/{guild.id}/member"
    narrow = await login(sandbox, http, app, alice.id, "identify guilds")
    status, body = await get(sandbox, http, path, f"Bearer {narrow['access_token']}")
    assert (status, body) == (403, {"message": "Missing Access", "code": 50001})
    assert (await get(sandbox, http, path, f"Bot {sandbox.token}"))[0] == 401

    grant = await login(sandbox, http, app, alice.id, "identify guilds.members.read")
    bearer = f"Bearer {grant['access_token']}"
    status, member = await get(sandbox, http, path, bearer)
    assert status == 200
    assert member["user"]["id"] == str(alice.id) and member["roles"] == [str(staff.id)]
    other = sandbox.create_guild("Other")
    status, body = await get(sandbox, http, f"/users/@me/guilds/{other.id}/member", bearer)
    assert (status, body) == (404, {"message": "Unknown Guild", "code": 10004})


async def test_the_authorize_page_also_answers_under_the_api_prefix(sandbox, guild, app, http):
    async with http.get(sandbox.api_url + "/oauth2/authorize", params=page_query(app)) as resp:
        assert resp.status == 200
        page = await resp.text()
    assert 'action="/api/v10/oauth2/authorize"' in page
    async with http.post(sandbox.api_url + "/oauth2/token", data={"grant_type": "x"}) as resp:
        assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Basic")
