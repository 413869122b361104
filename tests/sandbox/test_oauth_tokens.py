"""The sandbox's OAuth2 tokens, over real HTTP: refresh, revoke and expiry, and what a user's
Bearer token may read (/users/@me, its guilds, its member) and may not (bot routes)."""

from __future__ import annotations

import pytest

from tests.sandbox.oauth_client import basic, get, login, token

pytestmark = pytest.mark.asyncio


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
