"""The sandbox's OAuth2 authorization, over real HTTP: the consent page, the code and its
exchange at the token endpoint, client authentication, the control API's browserless login."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from sandbox import Sandbox, SandboxConfig
from tests.sandbox.oauth_client import (
    CALLBACK,
    CHALLENGE,
    VERIFIER,
    basic,
    get,
    login,
    page_query,
    token,
)

pytestmark = pytest.mark.asyncio


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



async def test_the_authorize_page_also_answers_under_the_api_prefix(sandbox, guild, app, http):
    async with http.get(sandbox.api_url + "/oauth2/authorize", params=page_query(app)) as resp:
        assert resp.status == 200
        page = await resp.text()
    assert 'action="/api/v10/oauth2/authorize"' in page
    async with http.post(sandbox.api_url + "/oauth2/token", data={"grant_type": "x"}) as resp:
        assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Basic")
