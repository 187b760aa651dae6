import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from feedback_app.models import Comparison, Prompt

pytestmark = pytest.mark.django_db
MODELS = ["prompt", "response", "comparison", "assignment", "preferencelabel", "tag", "importbatch", "auditentry",
          "rewardmodelversion", "policyversion", "trainingrun"]


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_every_model_has_a_searchable_filterable_changelist(admin_user, make_comparisons):
    make_comparisons(2)
    client = logged_in(admin_user)
    for model in MODELS:
        response = client.get(reverse(f"admin:feedback_app_{model}_changelist"), {"q": "order"})
        assert response.status_code == 200, model
        assert response.context["cl"].search_fields or model in ("tag",), model
    assert client.get(reverse("admin:auth_user_changelist"), {"q": "rater"}).status_code == 200


def test_researchers_see_the_admin_but_cannot_import(researcher, rater):
    client = logged_in(researcher)
    assert client.get(reverse("admin:feedback_app_comparison_changelist")).status_code == 200
    assert client.get(reverse("admin:feedback_app_prompt_import")).status_code == 403
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 403
    assert logged_in(rater).get(reverse("admin:index")).status_code == 302  # to the admin login


def test_admin_import_upload(admin_user):
    client = logged_in(admin_user)
    data = "\n".join(json.dumps(r) for r in [{"prompt": "Hi", "responses": ["a", "b"]}, {"prompt": "Yo", "responses": ["c", "d", "e"]}])
    response = client.post(reverse("admin:feedback_app_prompt_import"), {"kind": "prompts", "file": SimpleUploadedFile("p.jsonl", data.encode())})
    assert response.status_code == 302
    assert Comparison.objects.count() == 4


def test_admin_import_shows_every_problem_and_writes_nothing(admin_user):
    client = logged_in(admin_user)
    data = b'{"prompt": "ok", "responses": ["a", "b"]}\n{"prompt": ""}\nnot json\n'
    response = client.post(reverse("admin:feedback_app_prompt_import"), {"kind": "prompts", "file": SimpleUploadedFile("p.jsonl", data)})
    html = response.content.decode()
    assert response.status_code == 200
    assert "line 2, field &#x27;prompt&#x27;: is empty" in html and "line 3: not valid JSON" in html
    assert not Prompt.objects.exists()


def test_admin_export_download(researcher, rater, make_comparisons):
    client = logged_in(researcher)
    page = client.get(reverse("admin:feedback_app_preferencelabel_export"))
    assert page.status_code == 200
    response = client.get(reverse("admin:feedback_app_preferencelabel_export"), {"format": "csv"})
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    assert b"".join(response.streaming_content).startswith(b"label_id,comparison_id")
    assert logged_in(rater).get(reverse("admin:feedback_app_preferencelabel_export")).status_code == 302


def test_prune_model_store_action_and_a_pruned_version_refused(admin_user, settings):
    """"Prune model store now" applies retention; "make active" on the pruned version says why it cannot."""
    from feedback_app import training_bridge
    from feedback_app.models import RewardModelVersion

    settings.MODEL_RETENTION_KEEP = 1
    for name, status in (("rm-old", "retired"), ("rm-new", "active")):
        training_bridge.checkpoint_store().write("reward", name, {}, lambda tmp: (tmp / "heads.pt").write_bytes(b"w"))
        RewardModelVersion.objects.create(name=name, path=f"reward/{name}", status=status)
    client = logged_in(admin_user)
    url = reverse("admin:feedback_app_rewardmodelversion_changelist")
    old = RewardModelVersion.objects.get(name="rm-old")
    response = client.post(url, {"action": "prune_model_store", "_selected_action": [old.pk]}, follow=True)
    assert "removed 1: rm-old" in response.content.decode()
    assert RewardModelVersion.objects.get(name="rm-old").status == "pruned"
    response = client.post(url, {"action": "make_active", "_selected_action": [old.pk], "confirmed": "yes"}, follow=True)
    assert "m-old was pruned from the model store" in response.content.decode()  # the admin capitalises messages
    assert RewardModelVersion.objects.get(name="rm-new").status == "active"
