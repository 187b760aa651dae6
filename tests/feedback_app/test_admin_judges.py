"""The judges' admin: a remote judge stays off until the action that shows the off-machine warning enables it."""

import pytest
from django.test import Client
from django.urls import reverse

from feedback_app.models import AuditEntry, Judge

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _form(judge: Judge, **changes) -> dict:
    data = {"name": judge.name, "kind": judge.kind, "version": judge.version, "confidence_threshold": judge.confidence_threshold,
            "routing": "on" if judge.routing else ""}
    return {key: value for key, value in {**data, **changes}.items() if value != ""}


def test_a_remote_judge_cannot_be_enabled_from_its_form_and_its_page_shows_the_warning(admin_user):
    """The enabled box is read-only on a disabled remote judge; posting it changes nothing."""
    judge = Judge.objects.create(name="vllm", kind=Judge.Kind.REMOTE)
    client = logged_in(admin_user)
    url = reverse("admin:feedback_app_judge_change", args=[judge.pk])
    assert "sends every prompt and both replies it judges off this machine" in client.get(url).content.decode()
    response = client.post(url, _form(judge, enabled="on"))
    assert response.status_code == 302
    judge.refresh_from_db()
    assert not judge.enabled


def test_the_enable_action_enables_remote_judges_with_the_warning_and_an_audit_entry(admin_user):
    remote, local = Judge.objects.create(name="vllm", kind=Judge.Kind.REMOTE), Judge.objects.create(name="rm", kind=Judge.Kind.REWARD_MODEL)
    client = logged_in(admin_user)
    response = client.post(reverse("admin:feedback_app_judge_changelist"),
                           {"action": "enable_remote_judges", "_selected_action": [remote.pk, local.pk]}, follow=True)
    assert any("off this machine" in str(m) for m in response.context["messages"])
    remote.refresh_from_db(), local.refresh_from_db()
    assert remote.enabled and remote.remote_enabled_by == admin_user and remote.remote_enabled_at and not local.enabled
    assert AuditEntry.objects.filter(action="judge.remote_enable", target=f"judge:{remote.pk}").exists()


def test_a_local_judge_is_enabled_from_its_form(admin_user):
    judge = Judge.objects.create(name="rm", kind=Judge.Kind.REWARD_MODEL)
    client = logged_in(admin_user)
    client.post(reverse("admin:feedback_app_judge_change", args=[judge.pk]), _form(judge, enabled="on"))
    judge.refresh_from_db()
    assert judge.enabled


def test_the_backfill_action_queues_enabled_judges_and_refuses_disabled_ones(admin_user, monkeypatch):
    from feedback_app import events

    queued = []
    monkeypatch.setattr(events, "judge_backfill_queued", lambda *, judge_id: queued.append(judge_id))
    enabled, disabled = Judge.objects.create(name="rm", kind=Judge.Kind.REWARD_MODEL, enabled=True), Judge.objects.create(name="off", kind="local")
    response = logged_in(admin_user).post(reverse("admin:feedback_app_judge_changelist"),
                                          {"action": "backfill_judges", "_selected_action": [enabled.pk, disabled.pk]}, follow=True)
    texts = [str(m) for m in response.context["messages"]]
    assert queued == [enabled.pk] and "Queued a back-fill of rm." in texts and any("off is disabled" in t for t in texts)


def test_the_label_list_names_the_judge_of_an_ai_label(admin_user, make_judge, make_comparisons):
    from feedback_app.models import PreferenceLabel

    PreferenceLabel.objects.create(comparison=make_comparisons(1)[0], judge_version=make_judge("vllm").versions.get(), winner="a")
    html = logged_in(admin_user).get(reverse("admin:feedback_app_preferencelabel_changelist")).content.decode()
    assert "vllm@1" in html
