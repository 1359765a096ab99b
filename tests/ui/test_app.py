"""The whole app in headless Chromium: every tab is there and opens."""

from pathlib import Path

import pytest

TABS = ["Playground", "KL", "Training", "Feedback", "Runs", "Theory"]


@pytest.mark.browser
def test_every_tab_opens(page, app_url):
    page.goto(app_url)
    page.get_by_text("RLHF Lab").first.wait_for(timeout=30_000)
    for name in TABS:
        tab = page.get_by_role("tab", name=name)
        tab.click()
        assert tab.get_attribute("aria-selected") == "true"
    page.get_by_role("tab", name="Playground").click()
    Path("/tmp/shots").mkdir(exist_ok=True)
    page.screenshot(path="/tmp/shots/app_overview.png", full_page=False)
