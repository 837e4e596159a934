"""The widget in headless Chromium (Debian's /usr/bin/chromium via Playwright) against the real
server: tokens on screen before the stream ends, persona and sources, thumbs, the French 429,
the A/B split by a stable hash of user_id (and its rollback), embedding on another origin, a
dropped stream resumed or recovered without sending the message twice, and the hand-off."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from playwright.async_api import Browser, Locator, Page, Route, async_playwright, expect

from tests.integration.conftest import LLM_ADMIN_TOKEN, LiveServer
from tests.integration.local_http import client_site

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
V1 = "http://v1.agence.test/webhook/chat"
WIDGET = "#agence-chat-widget"
AUDREY_QUESTION = "Comment automatiser mes emails de bienvenue ?"
ESCALATE = "Je veux parler à un humain : ma facture est fausse et je veux être remboursée."

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} missing: `make browser` installs it"
    ),
]


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield launched
        await launched.close()


@pytest.fixture(scope="module")
async def site() -> AsyncIterator[str]:
    """A client's web site: another origin than the API (a real server, since Chromium's Local
    Network Access checks would refuse a page with no address calling loopback)."""
    async with client_site() as url:
        yield url


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context()
    opened = await context.new_page()
    # Every stream event the widget handles, in order, as the host page sees them.
    await opened.add_init_script(
        "window.__events = []; document.addEventListener('chatbot:event', e => "
        "window.__events.push({kind: e.detail.kind, id: e.detail.id, data: e.detail.data}));"
    )
    yield opened
    await context.close()


def fnv1a_bucket(user_id: str) -> int:
    """The README's A/B rule, written independently: FNV-1a 32-bit of the UTF-8 id, mod 100."""
    value = 0x811C9DC5
    for byte in user_id.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value % 100


def host_page(site: str, server: str, **attributes: str) -> str:
    """The client's page embedding the widget of `server` with these data- attributes."""
    params = {"script": f"{server}/widget.js", "open": "true"}
    params.update({k.replace("_", "-"): v for k, v in attributes.items()})
    return f"{site}/?{urlencode(params)}"


async def send(page: Page, text: str) -> None:
    await page.locator(f"{WIDGET} textarea").fill(text)
    await page.locator(f"{WIDGET} .panel > form button").click()


def bubbles(page: Page) -> Locator:
    return page.locator(f"{WIDGET} .msg.bot")


async def events(page: Page) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await page.evaluate("window.__events")
    return found


async def test_tokens_show_before_the_end_with_persona_sources_and_thumbs(
    page: Page, llm_server: LiveServer
) -> None:
    await page.goto(f"{llm_server.url}/")  # the demo page
    await send(page, AUDREY_QUESTION)
    # True only if, at some frame, the answer had text while `end` had not arrived.
    await page.wait_for_function(
        """() => {
          const answer = document.querySelector('#agence-chat-widget')
            .shadowRoot.querySelector('.msg.bot .text');
          return answer && answer.textContent.length > 0
            && !window.__events.some(e => e.kind === 'end');
        }""",
        timeout=20_000,
    )
    answer = bubbles(page).last
    await expect(answer).to_have_attribute("data-state", "done", timeout=30_000)
    seen = await events(page)
    kinds = [e["kind"] for e in seen if e["kind"] != "ready"]
    assert kinds[:3] == ["metadata", "route", "sources"]
    assert kinds[-1] == "end"
    tokens = "".join(e["data"]["text"] for e in seen if e["kind"] == "token")
    await expect(answer.locator(".text")).to_have_text(tokens)
    await expect(answer.locator(".who")).to_have_text("Audrey")
    sources = next(e["data"]["sources"] for e in seen if e["kind"] == "sources")
    assert sources
    items = answer.locator(".sources li")
    await expect(items).to_have_count(len(sources))
    await expect(items.first).to_contain_text(sources[0]["title"])
    # Thumbs: stored for this answer, and shown again after a reload (history + localStorage).
    await answer.locator(".feedback .up").click()
    await expect(answer.locator(".feedback .up")).to_have_attribute("aria-pressed", "true")
    message_id = seen[-1]["data"]["message_id"]
    await page.reload()
    restored = page.locator(f'{WIDGET} .msg.bot[data-message-id="{message_id}"]')
    await expect(restored.locator(".text")).to_have_text(tokens)
    await expect(restored.locator(".feedback .up")).to_have_attribute("aria-pressed", "true")
    await expect(restored.locator(".sources li")).to_have_count(len(sources))


async def test_a_429_shows_the_french_message(page: Page, limited_server: LiveServer) -> None:
    await page.goto(f"{limited_server.url}/")
    for text in ("Bonjour", "Encore moi", "Et encore"):
        await send(page, text)
        await expect(bubbles(page).last).to_have_attribute(
            "data-state", re.compile("done|error"), timeout=30_000
        )
        if await bubbles(page).last.get_attribute("data-state") == "error":
            break
    refused = bubbles(page).last
    await expect(refused).to_have_attribute("data-state", "error")
    await expect(refused.locator(".text")).to_have_text(
        "Trop de messages. Attendez quelques instants."
    )
    # Retry-After (exposed to the page by CORS) holds the send button for a while.
    await expect(page.locator(f"{WIDGET} .panel > form button")).to_be_disabled()


async def test_ab_split_is_a_stable_hash_of_the_user_id(
    page: Page, live_server: LiveServer, site: str
) -> None:
    v1_calls: list[dict[str, Any]] = []

    async def v1(route: Route) -> None:
        cors = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "content-type"}
        if route.request.method == "OPTIONS":
            await route.fulfill(status=204, headers=cors)
            return
        v1_calls.append(json.loads(route.request.post_data or "{}"))
        await route.fulfill(
            status=200,
            headers=cors,
            content_type="application/json",
            body=json.dumps({"message": "Réponse de v1 (n8n).", "agent": None}),
        )

    await page.route(V1, v1)
    candidates = [f"client-{n}" for n in range(40)]
    on_v2 = [u for u in candidates if fnv1a_bucket(u) < 50][:3]
    on_v1 = [u for u in candidates if fnv1a_bucket(u) >= 50][:3]

    async def version_of(user: str, percentage: str, **more: str) -> str:
        await page.goto(
            host_page(
                site, live_server.url, user_id=user, v2_percentage=percentage, v1_url=V1, **more
            )
        )
        host = page.locator(WIDGET)
        await expect(host).to_have_attribute("data-version", re.compile("v[12]"))
        version = await host.get_attribute("data-version")
        assert version is not None
        return version

    for user in on_v2 + on_v1:
        expected = "v2" if user in on_v2 else "v1"
        # The same user gets the same version on every visit.
        assert [await version_of(user, "50") for _ in range(2)] == [expected, expected]
    # Raising the share only moves users from v1 to v2; 0 is the guide's instant rollback.
    assert {await version_of(u, "100") for u in on_v1 + on_v2} == {"v2"}
    assert {await version_of(u, "0") for u in on_v1 + on_v2} == {"v1"}
    # The widget's hash is the documented one.
    ids = [f"user-{n}@example.com" for n in range(30)] + ["é-ü-ß", "42"]
    buckets = await page.evaluate("ids => ids.map(i => window.AgenceChatWidget.bucket(i))", ids)
    assert buckets == [fnv1a_bucket(i) for i in ids]

    # A v1 user's message goes to v1, in v1's payload; a v2 user's to this server, cross-origin.
    await version_of(on_v1[0], "50")
    await send(page, "Bonjour v1")
    await expect(bubbles(page).last.locator(".text")).to_have_text("Réponse de v1 (n8n).")
    assert v1_calls[-1]["userId"] == on_v1[0]
    assert v1_calls[-1]["message"] == "Bonjour v1"
    assert "conversationId" in v1_calls[-1]
    # It carries the user's token (WIDGET_SECRET sites) on every call to the API.
    calls_before = len(v1_calls)
    token = hmac.new(b"site-secret", on_v2[0].encode(), hashlib.sha256).hexdigest()
    api_calls: list[tuple[str, str, str | None]] = []
    page.on(
        "request",
        lambda r: (
            api_calls.append((r.method, r.url, r.post_data))
            if r.url.startswith(f"{live_server.url}/api/") and r.method != "OPTIONS"
            else None
        ),
    )
    await version_of(on_v2[0], "50", user_token=token)
    await send(page, AUDREY_QUESTION)
    await expect(bubbles(page).last).to_have_attribute("data-state", "done", timeout=30_000)
    await expect(bubbles(page).last.locator(".who")).to_have_text("Audrey")
    assert len(v1_calls) == calls_before
    history_call = next(url for method, url, _ in api_calls if method == "GET")
    assert f"user_token={token}" in history_call
    chat_body = next(json.loads(body or "{}") for method, _, body in api_calls if method == "POST")
    assert (chat_body["user_id"], chat_body["user_token"]) == (on_v2[0], token)


def sse_blocks(body: str) -> list[str]:
    return [b for b in re.split(r"\r\n\r\n|\n\n", body) if b.strip()]


def block_id(block: str) -> int | None:
    found = re.search(r"^id: ?(\d+)", block, re.MULTILINE)
    return int(found.group(1)) if found else None


def until_tokens(blocks: list[str], count: int) -> list[str]:
    """The blocks up to and including the `count`-th token event."""
    kept, tokens = [], 0
    for block in blocks:
        kept.append(block)
        tokens += "event: token" in block
        if tokens == count:
            break
    return kept


def cut_after_tokens(count: int, keep: list[str]) -> Callable[[Route], Any]:
    """A route handler: the real server's stream, cut after `count` tokens (a network drop);
    the full stream is kept in `keep`."""

    async def handler(route: Route) -> None:
        if route.request.method != "POST":
            await route.continue_()
            return
        response = await route.fetch()
        body = (await response.body()).decode()
        keep.append(body)
        blocks = until_tokens(sse_blocks(body), count)
        await route.fulfill(
            status=200,
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
            body="".join(b + "\r\n\r\n" for b in blocks),
        )

    return handler


def first_data(block: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(block.split("data: ", 1)[1].splitlines()[0])
    return data


async def test_a_dropped_stream_is_resumed_with_last_event_id(
    page: Page, live_server: LiveServer
) -> None:
    full: list[str] = []
    sent: list[tuple[str, str, str | None]] = []
    page.on(
        "request",
        lambda r: (
            sent.append((r.method, r.url, r.headers.get("last-event-id")))
            if "/api/chat/stream" in r.url
            else None
        ),
    )
    await page.route("**/api/chat/stream", cut_after_tokens(2, full))
    await page.goto(f"{live_server.url}/")
    await send(page, AUDREY_QUESTION)
    answer = bubbles(page).last
    await expect(answer).to_have_attribute("data-state", "done", timeout=30_000)
    blocks = sse_blocks(full[0])
    metadata = first_data(blocks[0])
    # One POST (the message is never sent twice), then the server's resume route from the
    # last event received.
    assert [(method, url.split("?")[0], last) for method, url, last in sent] == [
        ("POST", f"{live_server.url}/api/chat/stream", None),
        (
            "GET",
            f"{live_server.url}/api/chat/stream/{metadata['message_id']}",
            str(block_id(until_tokens(blocks, 2)[-1])),
        ),
    ]
    text = "".join(first_data(b)["text"] for b in blocks if "event: token" in b)
    await expect(answer.locator(".text")).to_have_text(text)
    await expect(answer.locator(".who")).to_have_text("Audrey")
    kinds = [e["kind"] for e in await events(page)]
    assert kinds.count("end") == 1


async def test_without_a_resume_route_the_saved_answer_is_shown_not_resent(
    page: Page, live_server: LiveServer, client: httpx.AsyncClient
) -> None:
    full: list[str] = []
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)

    async def no_resume(route: Route) -> None:  # a server without GET /api/chat/stream/{id}
        await route.fulfill(
            status=404, content_type="application/json", body='{"detail": "Not Found"}'
        )

    await page.route("**/api/chat/stream", cut_after_tokens(3, full))
    await page.route("**/api/chat/stream/*", no_resume)
    await page.goto(f"{live_server.url}/")
    await send(page, AUDREY_QUESTION)
    answer = bubbles(page).last
    await expect(answer).to_have_attribute("data-state", "done", timeout=30_000)
    user = await page.evaluate("window.AgenceChatWidget.userId")
    conversation = await page.evaluate("window.AgenceChatWidget.conversationId")
    history = (
        await client.get(f"/api/conversations/{conversation}/messages", params={"user_id": user})
    ).json()
    stored = [m for m in history["messages"] if m["role"] == "assistant"]
    assert len(stored) == 1  # sent once, answered once
    assert [p for p in posts if p.endswith("/api/chat/stream")] == [
        f"{live_server.url}/api/chat/stream"
    ]
    await expect(answer.locator(".text")).to_have_text(stored[0]["content"])
    await expect(answer.locator(".who")).to_have_text("Audrey")


async def test_hand_off_in_the_widget(page: Page, llm_server: LiveServer, site: str) -> None:
    user = "client-handoff"
    await page.goto(host_page(site, llm_server.url, user_id=user, poll_seconds="1"))
    banner = page.locator(f"{WIDGET} .banner")
    await send(page, ESCALATE)
    answer = bubbles(page).last
    await expect(answer).to_have_attribute("data-state", "done", timeout=30_000)
    await expect(answer.locator(".who")).to_have_text("Un membre de l'équipe")
    await expect(banner).to_be_visible()
    await send(page, "Vous êtes là ?")
    ack = bubbles(page).last
    await expect(ack).to_have_attribute("data-state", "done", timeout=30_000)
    await expect(ack.locator(".text")).to_contain_text("l'équipe")
    admin = {"Authorization": f"Bearer {LLM_ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=llm_server.url, timeout=30) as http:
        handoffs = (await http.get("/api/admin/handoffs", headers=admin)).json()
        handoff = next(h for h in handoffs if h["user_id"] == user)
        await http.post(
            f"/api/admin/handoffs/{handoff['id']}/messages",
            json={"content": "Bonjour, je m'occupe de votre facture.", "author": "Sophie"},
            headers=admin,
        )
        team = page.locator(f"{WIDGET} .msg.team")
        await expect(team.locator(".text")).to_have_text(
            "Bonjour, je m'occupe de votre facture.", timeout=10_000
        )
        await expect(team.locator(".who")).to_have_text("Un membre de l'équipe · Sophie")
        await http.post(f"/api/admin/handoffs/{handoff['id']}/release", headers=admin)
    await expect(banner).to_be_hidden(timeout=10_000)
    await send(page, AUDREY_QUESTION)
    await expect(bubbles(page).last.locator(".who")).to_have_text("Audrey", timeout=30_000)


async def test_inspector_shows_handoffs_feedback_and_kpi_charts(
    page: Page, llm_server: LiveServer
) -> None:
    user, conversation = "u-inspector", "inspector-handoff"
    admin = {"Authorization": f"Bearer {LLM_ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=llm_server.url, timeout=30) as http:
        say = {"user_id": user, "conversation_id": conversation}
        answer = (await http.post("/api/chat", json={**say, "message": AUDREY_QUESTION})).json()
        await http.post(
            f"/api/messages/{answer['message_id']}/feedback",
            json={"user_id": user, "rating": "down", "comment": "Il manque les délais."},
        )
        await http.post("/api/chat", json={**say, "message": ESCALATE})
        await page.goto(f"{llm_server.url}/inspector?token={LLM_ADMIN_TOKEN}")
        await page.click("nav button[data-view=handoffs]")
        item = page.locator(f'#handoffs button[data-conversation="{conversation}"]')
        await item.click()
        await expect(page.locator("#handoff-messages .line.user").last).to_contain_text(ESCALATE)
        await page.fill("#handoff-reply", "Bonjour, je reprends votre demande.")
        await page.fill("#handoff-author", "Sophie")
        await page.click("#handoff-send")
        await expect(page.locator("#handoff-messages .line.human_agent")).to_have_text(
            "Équipe · Sophie — Bonjour, je reprends votre demande."
        )
        history = (
            await http.get(f"/api/conversations/{conversation}/messages", params={"user_id": user})
        ).json()
        assert history["messages"][-1]["content"] == "Bonjour, je reprends votre demande."
        await page.click("#handoff-release")
        await expect(item).to_have_count(0)  # no longer open
        still_open = (await http.get("/api/admin/handoffs", headers=admin)).json()
        assert all(h["conversation_id"] != conversation for h in still_open)
    await page.click("nav button[data-view=analytics]")
    cards = page.locator("#kpis .kpi")
    await expect(cards).to_have_count(5)
    await expect(page.locator('#kpis .kpi[data-key="response_time_p95"]')).to_contain_text("5")
    for chart in ("latency", "errors", "escalation", "shares"):
        await expect(page.locator(f"#chart-{chart} svg .threshold")).to_have_count(1)
    await expect(page.locator('#chart-latency svg [data-series="audrey"]').first).to_be_attached()
    await expect(page.locator("#chart-escalation svg rect.column").first).to_be_attached()
    feedback = page.locator(f'#feedback li[data-message="{answer["message_id"]}"]')
    await expect(feedback).to_contain_text("Il manque les délais.")
