import gzip
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from feedback_app.models import Comparison, ImportBatch, ImportJob, Prompt

pytestmark = pytest.mark.django_db
MODELS = ["prompt", "response", "comparison", "assignment", "preferencelabel", "tag", "importbatch", "importjob", "auditentry",
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


@pytest.fixture
def import_dir(settings, tmp_path):
    settings.IMPORT_DIR = tmp_path / "imports"
    return settings.IMPORT_DIR


def upload(client, django_capture_on_commit_callbacks, data: bytes, *, name: str = "p.jsonl", **fields):
    """Post a file to the import page, run the queued job (tasks are eager here), and return the job page."""
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:feedback_app_prompt_import"), {"kind": "prompts", "file": SimpleUploadedFile(name, data), **fields})
    assert response.status_code == 302
    return client.get(response["Location"])


def test_admin_import_upload_runs_as_a_job_and_shows_the_result(admin_user, import_dir, django_capture_on_commit_callbacks):
    client = logged_in(admin_user)
    data = "\n".join(json.dumps(r) for r in [{"prompt": "Hi", "responses": ["a", "b"]}, {"prompt": "Yo", "responses": ["c", "d", "e"]}])
    page = upload(client, django_capture_on_commit_callbacks, data.encode())
    html = page.content.decode()
    assert page.status_code == 200
    assert "Done" in html and "4 comparisons" in html and 'http-equiv="refresh"' not in html
    assert Comparison.objects.filter(status=Comparison.Status.OPEN).count() == 4
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.DONE and job.progress == {"records": 2, "staged": 2}
    assert not list(import_dir.iterdir())  # the uploaded file is gone once the job ends


def test_admin_import_job_page_refreshes_until_the_job_ends(admin_user, import_dir):
    client = logged_in(admin_user)
    response = client.post(reverse("admin:feedback_app_prompt_import"), {"kind": "prompts", "file": SimpleUploadedFile("p.jsonl", b'{"prompt": "Hi"}')})
    page = client.get(response["Location"])  # on-commit never ran: the job still waits
    assert "Queued" in page.content.decode() and 'http-equiv="refresh"' in page.content.decode()
    assert client.get(reverse("admin:feedback_app_prompt_import_job", args=[999])).status_code == 404


def test_admin_import_shows_every_problem_and_writes_nothing(admin_user, import_dir, django_capture_on_commit_callbacks):
    client = logged_in(admin_user)
    data = b'{"prompt": "ok", "responses": ["a", "b"]}\n{"prompt": ""}\nnot json\n'
    html = upload(client, django_capture_on_commit_callbacks, data).content.decode()
    assert "Failed" in html and "nothing was imported" in html
    assert "line 2, field &#x27;prompt&#x27;: is empty" in html and "line 3: not valid JSON" in html
    assert not Prompt.objects.exists() and not ImportBatch.objects.exists()


def test_admin_import_takes_a_gzip_upload_and_names_a_csv_header_of_another_shape(admin_user, import_dir,
                                                                                    django_capture_on_commit_callbacks):
    client = logged_in(admin_user)
    packed = gzip.compress(b'{"prompt": "Hi", "responses": ["a", "b"]}\n')
    html = upload(client, django_capture_on_commit_callbacks, packed, name="p.jsonl.gz").content.decode()
    assert "Done" in html and "1 comparisons" in html
    html = upload(client, django_capture_on_commit_callbacks, b"question,answer\nHi,Hello\n" * 50, name="q.csv").content.decode()
    assert "Failed" in html and "2 problem(s)" in html and "line 1, field &#x27;prompt&#x27;: missing column" in html
    assert "line 2" not in html  # the header, not each row


def test_admin_import_reads_a_file_of_another_shape_through_a_column_mapping(admin_user, import_dir, django_capture_on_commit_callbacks):
    client = logged_in(admin_user)
    data = b"instruction,intent,response\nWhere is my parcel?,track_order,On its way.\n"
    html = upload(client, django_capture_on_commit_callbacks, data, name="s.csv").content.decode()
    assert "Failed" in html and "give a column mapping (--columns, or Column mapping in the upload form), e.g. prompt=instruction" in html
    assert f'?again={ImportJob.objects.get().pk}" data-testid="import-again"' in html
    again = client.get(reverse("admin:feedback_app_prompt_import") + f"?again={ImportJob.objects.get().pk}").content.decode()
    assert 'value="prompts" selected' in again and 'name="columns"' in again  # the failed job's choices, to change and retry
    assert client.get(reverse("admin:feedback_app_prompt_import") + "?again=x9").status_code == 200  # no such job: a blank form
    html = upload(client, django_capture_on_commit_callbacks, data, name="s.csv", columns="prompt=instruction; tags=intent").content.decode()
    assert "Done" in html and "1 prompts" in html and "1 awaiting generated replies" in html
    assert "<code>prompt=instruction; tags=intent</code>; left out the file's other columns: <code>response</code>" in html
    assert list(Prompt.objects.values_list("text", "tags__name")) == [("Where is my parcel?", "track_order")]
    job = ImportJob.objects.filter(status="done").get()
    again = client.get(reverse("admin:feedback_app_prompt_import") + f"?again={job.pk}").content.decode()
    assert 'value="prompt=instruction; tags=intent"' in again
    page = client.post(reverse("admin:feedback_app_prompt_import"), {"kind": "preferences", "columns": "prompt=instruction",
                                                                      "file": SimpleUploadedFile("s.csv", data)})
    assert page.status_code == 200 and not ImportJob.objects.filter(kind="preferences").exists()  # the form, again, naming the problem
    assert "the mapping names no column for chosen or rejected, which a preferences file needs" in page.content.decode()


def test_admin_import_tries_a_failed_upload_again_from_its_kept_file(admin_user, import_dir, django_capture_on_commit_callbacks):
    """The failed job's page says its file is kept; its "try again" form holds it, so a mapping is added without choosing the
    file again, and the new job names the one it retries. A form with no file and no kept one says what is missing."""
    client = logged_in(admin_user)
    url = reverse("admin:feedback_app_prompt_import")
    data = b"instruction,intent,response\nWhere is my parcel?,track_order,On its way.\n"
    html = upload(client, django_capture_on_commit_callbacks, data, name="s.csv").content.decode()
    failed = ImportJob.objects.get()
    assert "and its file, which is kept until" in html
    form = client.get(url + f"?again={failed.pk}").content.decode()
    assert 'data-testid="import-kept"' in form and "<code>s.csv</code>" in form and f'name="again" value="{failed.pk}"' in form
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"kind": "prompts", "again": failed.pk, "columns": "prompt=instruction; tags=intent"})
    assert response.status_code == 302
    html = client.get(response["Location"]).content.decode()
    assert "Done" in html and "1 prompts" in html and f"import job {failed.pk}</a> tried again" in html
    assert list(Prompt.objects.values_list("text", "tags__name")) == [("Where is my parcel?", "track_order")]
    page = client.post(url, {"kind": "prompts"})
    assert page.status_code == 200 and "This field is required." in page.content.decode()
    failed.path.unlink()  # its keep ran out, say
    page = client.post(url, {"kind": "prompts", "again": failed.pk, "columns": "prompt=instruction"})
    assert f"the file of import job {failed.pk} is no longer kept: choose it again" in page.content.decode()
    assert 'data-testid="import-kept"' not in page.content.decode() and ImportJob.objects.count() == 2


def test_admin_import_can_skip_invalid_rows_and_lists_them(admin_user, import_dir, django_capture_on_commit_callbacks):
    client = logged_in(admin_user)
    data = b'{"prompt": "ok", "responses": ["a", "b"]}\n{"prompt": ""}\n'
    html = upload(client, django_capture_on_commit_callbacks, data, skip_invalid="on").content.decode()
    assert "Done" in html and "Skipped 1 invalid row(s)" in html and "line 2, field &#x27;prompt&#x27;: is empty" in html
    assert list(Prompt.objects.values_list("text", flat=True)) == ["ok"]


def test_admin_export_download(researcher, rater, make_comparisons):
    client = logged_in(researcher)
    page = client.get(reverse("admin:feedback_app_preferencelabel_export"))
    assert page.status_code == 200
    response = client.get(reverse("admin:feedback_app_preferencelabel_export"), {"format": "csv"})
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    assert b"".join(response.streaming_content).startswith(b"label_id,comparison_id")
    assert logged_in(rater).get(reverse("admin:feedback_app_preferencelabel_export")).status_code == 302
    page = client.get(reverse("admin:feedback_app_preferencelabel_export"), {"format": "csv", "tags": "biling", "rater": "nobody"})
    assert page["Content-Type"].startswith("text/html")  # the form again, naming both, not an empty download
    assert "no tag &#x27;biling&#x27; in the studio" in page.content.decode() and "no rater &#x27;nobody&#x27;" in page.content.decode()


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


def test_a_researcher_changes_a_policys_serving_mode_with_an_admin_action_and_it_is_audited(researcher):
    """The field is read-only in the form; the actions change it through the service, which writes the audit entry."""
    from feedback_app.models import AuditEntry, PolicyVersion

    policy = PolicyVersion.objects.create(name="policy-00002", path="policy/policy-00002", serving_mode="sample")
    client = logged_in(researcher)
    url = reverse("admin:feedback_app_policyversion_changelist")
    response = client.post(url, {"action": "serve_rerank", "_selected_action": [policy.pk]}, follow=True)
    assert "Serving in mode &#x27;rerank&#x27; now: policy-00002." in response.content.decode()
    assert PolicyVersion.objects.get(pk=policy.pk).serving_mode == "rerank"
    again = client.post(url, {"action": "serve_rerank", "_selected_action": [policy.pk]}, follow=True)
    assert "none changed" in again.content.decode()
    entry = AuditEntry.objects.get(action="policyversion.serving_mode")
    assert (entry.actor, entry.target, entry.details["previous"], entry.details["mode"]) == (researcher, "policy-00002", "sample", "rerank")
    change = client.get(reverse("admin:feedback_app_policyversion_change", args=[policy.pk])).content.decode()
    assert 'name="serving_mode"' not in change


def test_the_runs_page_queues_a_run_for_the_campaign_picked_and_the_version_actions_per_campaign(admin_user, monkeypatch):
    from feedback_app import tasks
    from feedback_app.models import RewardModelVersion, TrainingRun
    from feedback_app.services.campaigns import campaign_create

    monkeypatch.setattr(tasks.training_run_execute, "apply_async", lambda args, **kw: None)
    billing = campaign_create(slug="billing", name="Billing", actor=admin_user)
    client = logged_in(admin_user)
    page = client.get(reverse("admin:feedback_app_trainingrun_changelist")).content.decode()
    assert f'<option value="{billing.pk}">Billing (billing)</option>' in page
    client.post(reverse("admin:feedback_app_trainingrun_request", args=["reward_full"]), {"campaign": billing.pk})
    assert TrainingRun.objects.get().campaign_id == billing.pk and TrainingRun.objects.get().kind == "reward_full"
    assert client.post(reverse("admin:feedback_app_trainingrun_request", args=["reward_fast"]), {"campaign": 999}).status_code == 403
    versions = [RewardModelVersion.objects.create(name=f"rm-{c.pk}", campaign=c, path=f"reward/rm-{c.pk}") for c in (billing,)]
    client.post(reverse("admin:feedback_app_rewardmodelversion_changelist"),
                {"action": "retrain_reward_fast", "_selected_action": [v.pk for v in versions]})
    assert TrainingRun.objects.filter(kind="reward_fast", campaign=billing).count() == 1  # the selected versions' campaign
