"""The inspector page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright)."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from server import serve_in_background
from services import Services
from tests.integration.conftest import _free_port

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
TOKEN = "browser-token"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} missing: `make browser` installs it"
    ),
]


@pytest.fixture(scope="module")
async def inspector_url(services: Services) -> AsyncIterator[str]:
    settings = services.settings.model_copy(update={"admin_token": SecretStr(TOKEN)})
    async with serve_in_background(settings, _free_port()) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            for message in ("Comment automatiser mes emails de bienvenue ?", "et pour le délai ?"):
                await http.post(
                    "/api/chat",
                    json={"user_id": "dev", "conversation_id": "browser-1", "message": message},
                )
        yield url


async def test_inspector_shows_turns_and_replays(inspector_url: str, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = await browser.new_page()
            await page.goto(f"{inspector_url}/inspector?token={TOKEN}")
            conversation = page.locator('#conversations button[data-conversation="browser-1"]')
            await expect(conversation).to_be_visible(timeout=20_000)
            await conversation.click()
            await expect(page.locator(".turn")).to_have_count(2, timeout=20_000)
            await expect(page.locator('.turn .row[data-node="route"]')).to_have_count(2)
            await expect(page.locator("#graph")).to_have_attribute("src", re.compile(r"^blob:"))
            route_row = page.locator('.turn .row[data-node="route"]').first
            await route_row.click()
            await expect(page.locator("#detail pre").first).to_contain_text('"route": "audrey"')
            await page.locator(".turn").first.locator("button.replay").first.click()
            await page.fill("#replay-message", "Aide-moi à créer un reel viral sur Instagram")
            await page.click("#replay-submit")
            await expect(page.locator("#replay-result .new")).to_contain_text(
                "carole", timeout=30_000
            )
            await expect(page.locator("#replay-result .old")).to_contain_text("Sources")
            await page.screenshot(path=str(tmp_path / "inspector.png"), full_page=True)
            # The original conversation is unchanged: still two turns.
            await conversation.click()
            await expect(page.locator(".turn")).to_have_count(2)
        finally:
            await browser.close()
