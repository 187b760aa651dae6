"""End to end in a real headless Chromium: log in, label with the keyboard, export."""

import json

import pytest

from feedback_app.models import PreferenceLabel, Role
from feedback_app.services.accounts import user_create
from tests.conftest import csp_watch
from feedback_app.selectors.campaigns import campaign_default

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "a long demo password"


def rater_page(browser, base: str, username: str):
    """Return a new page on which ``username`` has logged in and the label form is shown."""
    page = browser.new_page()
    page.goto(f"{base}/label/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#label-form")
    page.wait_for_load_state("domcontentloaded")  # label.js is deferred: keys pressed before it ran would do nothing
    return page


def test_rater_labels_three_comparisons_with_the_keyboard(asgi_live_server, browser, make_comparisons, tmp_path):
    comparisons = make_comparisons(4)
    rater, _, _ = user_create(username="kim", role=Role.RATER, password=PASSWORD)
    user_create(username="rhea", role=Role.RESEARCHER, password=PASSWORD)

    page = rater_page(browser, asgi_live_server, "kim")

    pressed, held_ready = [], []
    for keys in (("1", "q"), ("2", "e"), ("3", "w")):
        page.wait_for_function("() => document.querySelector('#today-count').textContent === '%d'" % len(pressed))  # the last label is in
        shown = page.get_attribute("#workspace", "data-comparison")
        left_text = page.inner_text("[data-testid=left-text]")
        held_ready.append(page.evaluate("document.getElementById('prefetched').content.firstElementChild.dataset.comparison"))
        for key in keys:
            page.keyboard.press(key)
        page.keyboard.press("Enter")
        page.wait_for_function(f"() => document.querySelector('#workspace').dataset.comparison !== '{shown}'")
        # the comparison held ready is the one shown, at once: its label is sent behind it
        assert page.get_attribute("#workspace", "data-comparison") == held_ready[-1]
        pressed.append((int(shown), keys, left_text))
    page.wait_for_function("() => document.querySelector('#today-count').textContent === '3'")
    page.wait_for_function("() => !document.getElementById('undo-button').disabled")
    page.screenshot(path=str(tmp_path / "label.png"))

    # The swap happened in place: no full page load since the login.
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1

    labels = {label.comparison_id: label for label in PreferenceLabel.objects.filter(rater=rater)}
    assert len(labels) == 3
    for comparison_id, (choice_key, strength_key), left_text in pressed:
        label = labels[comparison_id]
        comparison = next(c for c in comparisons if c.pk == comparison_id)
        a_on_left = left_text.strip() == comparison.response_a.text
        expected = {"1": "a" if a_on_left else "b", "2": "b" if a_on_left else "a", "3": "tie"}[choice_key]
        assert (label.winner, label.strength, label.a_on_left) == (expected, {"q": 1, "w": 2, "e": 3}[strength_key], a_on_left)
        assert label.time_on_task_ms is not None and label.time_on_task_ms > 0

    # U brings the last comparison back; the label is withdrawn.
    last = pressed[-1][0]
    page.keyboard.press("u")
    page.wait_for_function(f"() => document.querySelector('#workspace').dataset.comparison === '{last}'")
    assert PreferenceLabel.objects.filter(rater=rater).count() == 2
    page.keyboard.press("3")
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => document.querySelector('#workspace').dataset.comparison !== '{last}'")
    page.wait_for_function("() => document.querySelector('#today-count').textContent === '3'")  # the label sent behind the swap is in
    assert PreferenceLabel.objects.filter(rater=rater).count() == 3

    # A researcher downloads the raw export from the admin.
    researcher = browser.new_page()
    researcher.goto(f"{asgi_live_server}/admin/feedback_app/preferencelabel/export/")
    researcher.fill("#id_username", "rhea")
    researcher.fill("#id_password", PASSWORD)
    researcher.click("input[type=submit]")
    researcher.select_option("#id_format", "raw")
    with researcher.expect_download() as download:
        researcher.click("input[type=submit]")
    path = tmp_path / "export.jsonl"
    download.value.save_as(path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(r["comparison_id"] for r in rows) == sorted(labels)
    assert {r["rater"] for r in rows} == {rater.profile.pseudonym}
    by_comparison = {r["comparison_id"]: r for r in rows}
    for comparison_id, (choice_key, _), _ in pressed:
        assert by_comparison[comparison_id]["choice"] == {"1": "left", "2": "right", "3": "tie"}[choice_key]


def test_rater_rewrites_the_better_reply_with_the_keyboard(asgi_live_server, browser, make_comparisons):
    """1 then T opens the rewrite box filled with the left reply; the rater edits it and Enter (after Escape) stores a human_edit
    response started from that reply, and the label with it."""
    from feedback_app.models import Response

    make_comparisons(2)
    rater, _, _ = user_create(username="kim", role=Role.RATER, password=PASSWORD)
    page = rater_page(browser, asgi_live_server, "kim")
    shown = page.get_attribute("#workspace", "data-comparison")
    left_text = page.get_attribute("[data-testid=left-text]", "data-text")
    assert page.is_visible("[data-testid=rewrite-button]") and "rewrite" in page.inner_text("footer, .keys").lower()
    page.keyboard.press("1")
    page.keyboard.press("t")
    box = page.locator("textarea[name=edited_text]")
    assert box.input_value() == left_text.replace("\r\n", "\n")
    box.fill(left_text + " I have also refunded the shipping fee.")
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => document.querySelector('#workspace').dataset.comparison !== '{shown}'")
    page.wait_for_function("() => document.querySelector('#today-count').textContent === '1'")  # the label sent behind the swap is in
    label = PreferenceLabel.objects.get(rater=rater)
    assert label.rewrite is not None and label.rewrite.source == Response.Source.HUMAN_EDIT
    assert label.rewrite.text.endswith("I have also refunded the shipping fee.")
    assert label.rewrite.edited_from.text == left_text
    assert page.locator("textarea[name=edited_text]").input_value() == ""  # the next comparison starts without a rewrite


def test_login_and_label_pages_pass_the_content_security_policy(asgi_live_server, browser, make_comparisons):
    """No inline script, style or eval: the pages load, label and swap with no CSP violation."""
    make_comparisons(3)
    user_create(username="kim", role=Role.RATER, password=PASSWORD)
    page = browser.new_page()
    violations = csp_watch(page)
    page.goto(f"{asgi_live_server}/label/")
    page.fill("#id_username", "kim")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#label-form")
    page.wait_for_load_state("domcontentloaded")  # label.js has run
    assert page.evaluate("document.documentElement.className") == "js"  # js-on.js ran
    shown = page.get_attribute("#workspace", "data-comparison")
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => document.querySelector('#workspace').dataset.comparison !== '{shown}'")
    page.wait_for_load_state("networkidle")
    assert violations == []


def test_new_guidelines_are_open_until_read_then_one_key_away(asgi_live_server, browser, make_comparisons):
    from feedback_app.services.campaigns import campaign_guidelines_set

    make_comparisons(2)
    user_create(username="kim", role=Role.RATER, password=PASSWORD)
    admin, _, _ = user_create(username="ada", role=Role.ADMIN, password=PASSWORD)
    campaign_guidelines_set(campaign=campaign_default(), user=admin, text="## Be kind\nSolve the **customer's** problem first.")
    page = rater_page(browser, asgi_live_server, "kim")
    assert page.evaluate("document.getElementById('guidelines').open") and "customer's" in page.inner_text("#guidelines")
    page.click("[data-testid=guidelines-read]")
    page.wait_for_selector("#label-form")
    assert not page.evaluate("document.getElementById('guidelines').open")
    page.keyboard.press("g")
    assert page.evaluate("document.getElementById('guidelines').open")
    page.keyboard.press("g")
    assert not page.evaluate("document.getElementById('guidelines').open")


def test_a_member_of_two_campaigns_picks_one_and_labels_only_its_comparisons(asgi_live_server, browser, make_comparisons):
    """The unscoped /label/ sends a member of other campaigns to pick one; each label page leases, counts and swaps within its campaign."""
    from feedback_app.models import Comparison, Prompt, Response
    from feedback_app.services.campaigns import campaign_create, member_set

    make_comparisons(2)  # the default campaign's, which she never sees
    rater, _, _ = user_create(username="ines", role=Role.RATER, password=PASSWORD)
    campaigns = {slug: campaign_create(slug=slug, name=name) for slug, name in (("billing", "Billing replies"), ("safety", "Safety"))}
    for slug, campaign in campaigns.items():
        member_set(campaign=campaign, user=rater, role=Role.RATER)
        for i in range(3):
            prompt = Prompt.objects.create(campaign=campaign, text=f"{slug} request {i}")
            a, b = (Response.objects.create(prompt=prompt, text=f"{slug} reply {k}{i}") for k in "ab")
            Comparison.objects.create(prompt=prompt, response_a=a, response_b=b)
    page = browser.new_page()
    errors = csp_watch(page)
    page.goto(f"{asgi_live_server}/label/")
    page.fill("#id_username", "ines")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=campaigns]")
    assert page.url.endswith("/campaigns/")
    page.click("[data-testid=campaign-safety]")
    page.wait_for_selector("#label-form")
    page.wait_for_load_state("domcontentloaded")  # label.js has run
    assert page.url.endswith("/c/safety/label/") and "Safety" in page.inner_text("[data-testid=campaign]")
    for n in range(2):
        assert page.inner_text(".turn.current p").startswith("safety request")
        shown = page.get_attribute("#workspace", "data-comparison")
        page.keyboard.press("1")
        page.keyboard.press("Enter")
        page.wait_for_function(f"() => document.querySelector('#workspace').dataset.comparison !== '{shown}'")
    page.wait_for_function("() => document.querySelector('#today-count').textContent === '2'")
    page.goto(f"{asgi_live_server}/c/billing/label/")
    page.wait_for_selector("#label-form")
    assert page.inner_text(".turn.current p").startswith("billing request")
    assert page.inner_text("#today-count") == "0"
    labels = PreferenceLabel.objects.filter(rater=rater)
    assert {label.comparison.prompt.campaign.slug for label in labels} == {"safety"} and labels.count() == 2
    assert errors == []
