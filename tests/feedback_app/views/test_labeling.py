import re

import pytest
from django.test import Client

from feedback_app.models import Assignment, PreferenceLabel
from feedback_app.selectors.campaigns import campaign_default

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"


def logged_in(user, *, csrf_checks: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf_checks)
    client.force_login(user)
    return client


def csrf_token(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def test_anonymous_is_sent_to_login(client):
    response = client.get("/label/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_login_page_and_login(client, rater):
    assert client.get("/login/").status_code == 200
    response = client.post("/login/", {"username": rater.username, "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/", follow=True).redirect_chain[-1][0] == "/label/"


def test_page_shows_prompt_and_both_responses(rater, make_comparisons):
    (comparison,) = make_comparisons(1)
    html = logged_in(rater).get("/label/").content.decode()
    assert comparison.prompt.text in html
    assert comparison.response_a.text in html and comparison.response_b.text in html
    for key in ("1", "2", "3", "4", "Q", "W", "E", "Enter", "S", "U"):
        assert f"<kbd>{key}</kbd>" in html
    assert 'hx-post="/label/%d/"' % comparison.pk in html and 'action="/label/%d/"' % comparison.pk in html


def test_an_empty_reply_shows_as_empty_reply(rater, make_comparisons):
    (comparison,) = make_comparisons(1)
    comparison.response_a.text = ""
    comparison.response_a.save()
    html = logged_in(rater).get("/label/").content.decode()
    assert html.count("(empty reply)") == 1 and comparison.response_b.text in html


def test_plain_form_post_without_javascript(rater, make_comparisons):
    """The page works with plain form posts: post, redirect, next comparison."""
    first, second = make_comparisons(2)
    client = logged_in(rater, csrf_checks=True)
    html = client.get("/label/").content.decode()
    shown = first if f"/label/{first.pk}/" in html else second
    response = client.post(f"/label/{shown.pk}/", {"csrfmiddlewaretoken": csrf_token(html), "choice": "right", "strength": "1",
                                                   "criterion_honesty": "left", "rationale": " polite ", "flags": ["private"]})
    assert response.status_code == 302 and response["Location"] == "/label/"
    label = PreferenceLabel.objects.get()
    assert label.comparison_id == shown.pk and label.strength == 1 and label.rationale == "polite" and label.flags == ["private"]
    assert label.time_on_task_ms is not None
    follow = client.get("/label/").content.decode()
    other = second if shown == first else first
    assert f"/label/{other.pk}/" in follow and "Today <strong id=\"today-count\">1</strong>" in follow


def test_htmx_submit_swaps_in_the_next_comparison(rater, make_comparisons):
    """The page holds the next comparison ready (a second lease, in a <template>); the submit's answer shows that one."""
    make_comparisons(2)
    client = logged_in(rater)
    page = client.get("/label/").content.decode()
    current, ahead = Assignment.objects.filter(rater=rater).order_by("leased_at", "id")
    assert f'data-comparison="{current.comparison_id}"' in page.split('<template id="prefetched"')[0]
    assert f'data-comparison="{ahead.comparison_id}"' in page.split('<template id="prefetched"')[1]
    response = client.post(f"/label/{current.comparison_id}/", {"choice": "left", "strength": "2", "time_on_task_ms": "4321"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200 and html.lstrip().startswith('<section id="workspace"') and "<html" not in html
    assert PreferenceLabel.objects.get().time_on_task_ms == 4321
    assert f'data-comparison="{ahead.comparison_id}"' in html and 'id="prefetched"' not in html  # nothing left to hold ready


def test_the_lease_ahead_holds_a_slot_like_any_lease_and_can_be_turned_off(make_user, make_comparisons, settings):
    """Another rater is not offered the comparison held ready; with LABEL_PREFETCH off the page holds one lease."""
    from feedback_app.models import Role

    make_comparisons(2)
    first, second = make_user(Role.RATER), make_user(Role.RATER)
    assert 'id="prefetched"' in logged_in(first).get("/label/").content.decode()
    assert "All caught up" in logged_in(second).get("/label/").content.decode()
    assert Assignment.objects.filter(rater=first, status="leased").count() == 2
    settings.LABEL_PREFETCH = False
    Assignment.objects.all().delete()
    assert 'id="prefetched"' not in logged_in(second).get("/label/").content.decode()
    assert Assignment.objects.filter(rater=second).count() == 1


def test_missing_choice_is_explained(rater, make_comparisons):
    make_comparisons(1)
    client = logged_in(rater)
    client.get("/label/")
    current = Assignment.objects.get(rater=rater)
    response = client.post(f"/label/{current.comparison_id}/", {"strength": "2"}, HTTP_HX_REQUEST="true")
    assert "Pick which response is better" in response.content.decode()
    assert not PreferenceLabel.objects.exists()
    plain = client.post(f"/label/{current.comparison_id}/", {"strength": "2"})
    assert plain.status_code == 400


def test_skip_and_undo(rater, make_comparisons):
    first, second = make_comparisons(2)
    client = logged_in(rater)
    client.get("/label/")
    held = Assignment.objects.filter(rater=rater).order_by("leased_at", "id").first().comparison_id
    client.post(f"/label/{held}/skip/", HTTP_HX_REQUEST="true")
    other = Assignment.objects.get(rater=rater, status="leased").comparison_id
    assert other != held
    client.post(f"/label/{other}/", {"choice": "tie", "strength": "2"})
    response = client.post("/label/undo/", HTTP_HX_REQUEST="true")
    assert f'data-comparison="{other}"' in response.content.decode() and "withdrawn" in response.content.decode()
    assert not PreferenceLabel.objects.exists()
    empty = client.post("/label/undo/", HTTP_HX_REQUEST="true").content.decode()
    assert "Nothing undone" in empty


def test_empty_queue_says_so(rater):
    html = logged_in(rater).get("/label/").content.decode()
    assert "All caught up" in html and 'hx-trigger="every 60s"' in html and 'id="queue-notice"' in html
    assert 'ws-connect="/ws/rater/"' in html


def test_htmx_post_without_csrf_token_is_refused(rater, make_comparisons):
    (comparison,) = make_comparisons(1)
    client = logged_in(rater, csrf_checks=True)
    html = client.get("/label/").content.decode()
    refused = client.post(f"/label/{comparison.pk}/", {"choice": "left"}, HTTP_HX_REQUEST="true")
    assert refused.status_code == 403 and not PreferenceLabel.objects.exists()
    # htmx sends the token in the X-CSRFToken header set on <body hx-headers=...>.
    token = re.search(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', html).group(1)
    accepted = client.post(f"/label/{comparison.pk}/", {"choice": "left"}, HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 200 and PreferenceLabel.objects.count() == 1


def test_users_without_a_role_are_refused(django_user_model):
    nobody = django_user_model.objects.create_user("nobody", password="x")
    assert logged_in(nobody).get("/label/").status_code == 403


HUGE = "99999999999999999999"  # past 2**63


@pytest.mark.parametrize(("field", "value"), [("time_on_task_ms", "٣"), ("time_on_task_ms", "²"), ("time_on_task_ms", HUGE),
                                              ("time_on_task_ms", "1e3"), ("strength", "٣"), ("strength", HUGE)])
def test_a_bad_form_field_is_a_400_naming_it(rater, make_comparisons, field, value):
    (comparison,) = make_comparisons(1)
    client = logged_in(rater)
    client.get("/label/")
    response = client.post(f"/label/{comparison.pk}/", {"choice": "left", field: value})
    assert response.status_code == 400
    assert 'class="errorlist' in response.content.decode() or "error" in response.content.decode()
    assert not PreferenceLabel.objects.exists()


def test_a_lone_surrogate_in_a_form_post_is_a_400(rater, make_comparisons):
    """UTF-8 for U+DC80 is not valid UTF-8; it reads as replacement characters, which no choice is."""
    (comparison,) = make_comparisons(1)
    client = logged_in(rater)
    client.get("/label/")
    response = client.post(f"/label/{comparison.pk}/", b"choice=%ED%B2%80&rationale=%ED%A0%80", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and not PreferenceLabel.objects.exists()


@pytest.mark.parametrize("url", [f"/label/{HUGE}/", f"/label/{HUGE}/skip/"])
def test_path_ids_past_64_bits_are_a_400_naming_them(rater, url):
    response = logged_in(rater).post(url, {"choice": "left"})
    assert response.status_code == 400 and "comparison_id" in response.content.decode()


@pytest.mark.parametrize("value", ["²", "٣", HUGE, "-1", "x"])
def test_a_bad_lease_parameter_is_a_400_naming_it(rater, make_comparisons, value):
    make_comparisons(1)
    response = logged_in(rater).get("/label/", {"c": value})
    assert response.status_code == 400 and response.content.decode().startswith("c must be a whole number")


def test_a_cut_off_reply_is_marked_on_its_side(rater, make_comparisons):
    """A truncated reply gets a "cut off" mark on the side it is shown on; a complete one gets none."""
    (comparison,) = make_comparisons(1)
    comparison.response_a.truncated = True
    comparison.response_a.save()
    client = logged_in(rater)
    html = client.get("/label/").content.decode()
    side = "left" if Assignment.objects.get(rater=rater).a_on_left else "right"
    other = "right" if side == "left" else "left"
    assert f'data-testid="{side}-cut-off"' in html and f'data-testid="{other}-cut-off"' not in html
    assert html.count(">cut off</span>") == 1


def test_no_cut_off_mark_when_both_replies_are_complete(rater, make_comparisons):
    make_comparisons(1)
    assert "cut-off" not in logged_in(rater).get("/label/").content.decode()


def test_page_offers_a_rewrite_with_its_key_and_works_without_javascript(rater, make_comparisons):
    """The rewrite control and its key are on screen; the textarea is in the form itself, empty until the rater writes."""
    make_comparisons(1)
    html = logged_in(rater).get("/label/").content.decode()
    assert 'id="rewrite-button"' in html and "Rewrite <kbd>T</kbd>" in html and "<kbd>T</kbd> rewrite" in html
    start = html.index('<form id="label-form"')
    form = html[start:html.index("</form>", start)]
    assert re.search(r'<textarea name="edited_text"[^>]*maxlength="20000"[^>]*>\s*</textarea>', form)
    assert 'name="edited_from" value="left"' in form and 'name="edited_from" value="right"' in form
    assert "<script>" not in html and " onclick=" not in html  # the strict CSP allows no inline script


def test_plain_form_post_with_a_rewrite_stores_it(rater, make_comparisons):
    (comparison,) = make_comparisons(1)
    client = logged_in(rater, csrf_checks=True)
    html = client.get("/label/").content.decode()
    response = client.post(f"/label/{comparison.pk}/", {"csrfmiddlewaretoken": csrf_token(html), "choice": "tie", "edited_from": "left",
                                                        "edited_text": "It ships tomorrow;\r\nyou will get an email."})
    assert response.status_code == 302
    label = PreferenceLabel.objects.get()
    left = comparison.response_a if Assignment.objects.get().a_on_left else comparison.response_b
    assert label.rewrite.text == "It ships tomorrow;\nyou will get an email." and label.rewrite.edited_from_id == left.pk


@pytest.mark.parametrize(("fields", "message"), [
    ({"choice": "left", "edited_text": "  \r\n "}, "only white space"),
    ({"choice": "left", "edited_text": "x" * 20001}, "at most 20000 characters"),
])
def test_a_bad_rewrite_is_a_400_that_keeps_the_text(rater, make_comparisons, fields, message):
    """Without htmx the form comes back with a 400 and the error; with htmx, 200 and the same; nothing is stored."""
    (comparison,) = make_comparisons(1)
    client = logged_in(rater)
    client.get("/label/")
    response = client.post(f"/label/{comparison.pk}/", fields)
    html = response.content.decode()
    assert response.status_code == 400 and message in html and 'id="rewrite" open' in html
    assert client.post(f"/label/{comparison.pk}/", fields, HTTP_HX_REQUEST="true").status_code == 200
    assert not PreferenceLabel.objects.exists()


def test_guidelines_are_open_until_the_rater_confirms_reading_them_and_open_again_when_they_change(rater, researcher, make_comparisons,
                                                                                                  django_capture_on_commit_callbacks):
    from feedback_app.services import campaigns

    def guidelines_set(**kwargs):  # and its on-commit clear of the campaign cache, which a test transaction never runs
        with django_capture_on_commit_callbacks(execute=True):
            campaigns.campaign_guidelines_set(campaign=campaign_default(), **kwargs)

    make_comparisons(1)
    client = logged_in(rater)
    assert 'id="guidelines"' not in client.get("/label/").content.decode()  # none written yet
    guidelines_set(user=researcher, text="**Solve** the customer's problem.")
    page = client.get("/label/").content.decode()
    assert 'id="guidelines" data-testid="guidelines" open' in page and "<strong>Solve</strong>" in page and "version 1" in page
    assert client.post("/label/guidelines/", {"version": "1"}).status_code == 302
    page = client.get("/label/").content.decode()
    assert 'data-testid="guidelines">' in page and 'data-testid="guidelines" open' not in page and "guidelines-read" not in page
    guidelines_set(user=researcher, text="Solve it, briefly.")
    assert 'data-testid="guidelines" open' in client.get("/label/").content.decode()
    assert 'id="guidelines"' not in client.get("/label/", HTTP_HX_REQUEST="true").content.decode()  # the partial swaps below them
    bad = client.post("/label/guidelines/", {"version": "two"})
    assert bad.status_code == 400 and "version" in bad.content.decode()


def test_staff_write_the_guidelines_on_the_quality_page(researcher, rater):
    
    client = logged_in(researcher)
    assert 'data-testid="guidelines-panel"' in client.get("/dashboard/quality/").content.decode()
    assert client.post("/dashboard/guidelines/", {"guidelines": "# Be kind"}).status_code == 302
    assert (campaign_default().guidelines, campaign_default().guidelines_version) == ("# Be kind", 1)
    assert "<h1>Be kind</h1>" in client.get("/dashboard/quality/").content.decode()
    assert logged_in(rater).post("/dashboard/guidelines/", {"guidelines": "mine"}).status_code == 403
    assert campaign_default().guidelines == "# Be kind"


def test_the_label_page_says_when_the_campaign_is_paused(rater, admin_user, django_capture_on_commit_callbacks):
    from feedback_app.services.campaigns import campaign_settings_update

    with django_capture_on_commit_callbacks(execute=True):
        campaign_settings_update(campaign=campaign_default(), user=admin_user, state="paused")
    html = logged_in(rater).get("/label/").content.decode()
    assert 'data-testid="paused"' in html and "All caught up" not in html


def test_the_label_page_tells_a_new_rater_about_the_qualification_and_its_result(make_user, admin_user, make_comparisons,
                                                                               django_capture_on_commit_callbacks):
    from feedback_app.models import Role
    from feedback_app.services.campaigns import campaign_settings_update
    from feedback_app.services.quality import comparison_mark_gold

    (gold,) = make_comparisons(1)
    comparison_mark_gold(comparison=gold, winner="a", user=admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        campaign_settings_update(campaign=campaign_default(), user=admin_user, qualification_pairs=2, qualification_accuracy=0.5, gold_rate=0.0)
    rater = make_user(Role.RATER)
    client = logged_in(rater)
    page = client.get("/label/").content.decode()
    assert 'data-testid="qualification"' in page and "0 of 2" in page
    client.post(f"/label/{gold.pk}/", {"choice": "tie", "strength": "2"})
    waiting = client.get("/label/").content.decode()
    assert 'data-testid="qualification-waiting"' in waiting and "you have labelled 1" in waiting
    researcher_view = logged_in(admin_user).get("/dashboard/quality/").content.decode()
    assert f'data-testid="qualification-{rater.username}"' in researcher_view and ">pending<" in researcher_view
