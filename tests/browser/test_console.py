"""The staff console in a real Chromium, against the real app, the real bot and the sandbox
(its OAuth2 consent page included), offline: log in through Discord's (the sandbox's) page,
see only the servers you are staff of, filter, open an entry, a stale retry that needs
"Replay anyway", resolve with a note that is only text, see it in the audit page and the log
channel, retry all of a signature with progress; a non-staff user sees no server and gets
404 on a guessed URL; a POST without the CSRF token is refused. Screenshots of each page,
and axe-core on each: no serious or critical violation."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page, expect

from bot.api.server import ApiServer
from bot.console.staff import GatewayStaff
from domain.lifecycle import Operation, Source
from tests.bot.support import dead_letter, replayable
from tests.bot.world import World, setup_guild
from tests.browser.support import PageWatch, axe_violations, screenshot, serious
from tests.console.support import console_container
from tests.helpers import cmd

SIGNATURE = "verify/retries_exhausted/WriteConflict"


@pytest.fixture
async def console(world: World) -> AsyncIterator[str]:
    """The real app with the console on a free port of 127.0.0.1, the bot's own view of
    members answering who is staff."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    container = console_container(world, console_url=base)
    world.sandbox.config.oauth_redirect_uris.append(f"{base}/console/callback")
    server = ApiServer(container, host="127.0.0.1", port=port,
                       console_staff=GatewayStaff(world.bot, container.guilds))
    await server.start()
    try:
        yield base
    finally:
        await server.stop()


async def _login(page: Page, base: str, username: str) -> None:
    await page.goto(f"{base}/console")
    await page.get_by_role("link", name="Log in with Discord").click()
    await page.get_by_label(re.compile(rf"\(@{username}, ")).check()
    await page.get_by_role("button", name="Authorize").click()
    await expect(page.get_by_role("heading", name="Your servers")).to_be_visible()


async def _fits(page: Page) -> bool:
    """No horizontal scrolling: the page is no wider than the window."""
    await page.wait_for_load_state("load")  # the stylesheet applied, not only the DOM
    return bool(await page.evaluate(
        "document.documentElement.scrollWidth <= window.innerWidth"))


async def _accessible(page: Page, name: str) -> None:
    await screenshot(page, f"console-{name}")
    assert serious(await axe_violations(page)) == set(), name


async def test_a_staff_member_works_through_the_console(world: World, console: str,
                                                        page: Page, watch: PageWatch) -> None:
    await setup_guild(world)
    replayables = [await replayable(world.container, world.guild.id) for _ in range(3)]
    stale_user, stale = await replayable(world.container, world.guild.id)
    await world.container.transitions.apply(cmd(Operation.VERIFY, stale_user, world.guild.id,
                                                 source=Source.STAFF))
    noted = await dead_letter(world.container, world.guild.id)
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))

    await page.goto(f"{console}/console")
    await _accessible(page, "login")
    await _login(page, console, "staffer")
    await expect(page.get_by_role("link", name=world.guild.name)).to_be_visible()
    await _accessible(page, "servers")

    await page.get_by_role("link", name=world.guild.name).click()
    await expect(page.get_by_role("heading", name="Dead letters")).to_be_visible()
    await page.get_by_label("Operation").select_option("verify")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_role("link", name=f"#{stale}", exact=True)).to_be_visible()
    await _accessible(page, "dead-letters")

    # A stale entry: shown as changed; a retry is not applied, it asks first.
    await page.get_by_role("link", name=f"#{stale}", exact=True).click()
    await expect(page.get_by_text("They changed since this was recorded")).to_be_visible()
    await _accessible(page, "entry")
    await page.get_by_role("button", name="Retry", exact=True).click()
    await expect(page.get_by_role("button", name="Replay anyway")).to_be_visible()
    await _accessible(page, "entry-stale")

    # Resolve with a note that looks like a script: it is shown as text, never run.
    await page.goto(f"{console}/console/g/{world.guild.id}/dead-letters/{noted}")
    # ... and a long unbroken word (a pasted URL) wraps instead of widening the page.
    note = "<script>alert('x')</script> fixed by hand, see example.invalid/" + "x" * 300
    resolve = page.locator("form", has=page.get_by_role("button", name="Resolve"))
    await resolve.get_by_label("Note").fill(note)
    await resolve.get_by_role("button", name="Resolve").click()
    await expect(page.get_by_role("status")).to_have_text("Resolved.")
    await expect(page.get_by_text(note, exact=False)).to_be_visible()
    assert await _fits(page), "the entry page is wider than the window"
    await page.get_by_role("link", name="← Dead letters").click()
    await page.get_by_role("link", name="Audit").click()
    await expect(page.get_by_role("cell", name=note)).to_be_visible()
    assert await _fits(page), "the audit page is wider than the window"
    await _accessible(page, "audit")
    await world.sandbox.wait_for_message(world.log_channel,
                                         lambda m: "fixed by hand" in m.text)

    # Retry all of a signature: a preview, a confirmation, then progress until done.
    await page.goto(f"{console}/console/g/{world.guild.id}/dead-letters?signature="
                    f"{SIGNATURE}")
    await page.get_by_role("link", name="Retry all matching").click()
    await _accessible(page, "retry-all")
    await page.get_by_role("button", name=re.compile(r"^Retry \d+ entr")).click()
    await expect(page.get_by_role("status")).to_contain_text("Done:", timeout=20_000)
    await _accessible(page, "retry-all-done")
    for user, _ in replayables:
        assert await world.state(user) == "verified"

    await page.goto(f"{console}/console/g/{world.guild.id}/deliveries")
    await _accessible(page, "deliveries")
    await world.container.services.overview.refresh()
    await page.goto(f"{console}/console/g/{world.guild.id}/overview")
    await expect(page.get_by_role("img", name="New and resolved dead letters per day")
                 ).to_be_visible()
    await _accessible(page, "overview")

    # A POST without the CSRF token, with the session's cookie: refused.
    refused = await page.request.post(f"{console}/console/logout",
                                      headers={"origin": console})
    assert refused.status == 403
    assert dialogs == []
    assert watch.blocked == [] and watch.csp_violations == [] and watch.page_errors == []
    assert [e for e in watch.console_errors if "404" in e] == []  # the icon among them
    icon = await page.locator("link[rel=icon]").get_attribute("href")
    assert icon and (await page.request.get(console + icon)).status == 200


async def test_a_member_who_is_not_staff_sees_no_server(world: World, console: str,
                                                        page: Page) -> None:
    await setup_guild(world)
    world.sandbox.member_join(world.guild, None, "visitor")
    await _login(page, console, "visitor")
    await expect(page.get_by_text("You are staff of no server")).to_be_visible()
    answer = await page.goto(f"{console}/console/g/{world.guild.id}/dead-letters")
    assert answer is not None and answer.status == 404
    await expect(page.get_by_text("There is no such server in your console.")).to_be_visible()
    await screenshot(page, "console-not-staff")
