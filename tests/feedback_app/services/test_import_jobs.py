import csv
import gzip
import io
import json
from pathlib import Path

import pytest
from django.utils.text import slugify

from feedback_app.models import Comparison, ImportBatch, ImportJob, PreferenceLabel, Prompt, Response
from feedback_app.selectors.dashboard import overview_counters
from feedback_app.selectors.exports import ExportFilters, labels_for_export
from feedback_app.selectors.supply import open_comparison_count, prompts_needing_comparisons
from feedback_app.services import import_jobs
from feedback_app.services.import_jobs import import_file, import_job_create, import_job_execute, staged_remove
from feedback_app.services.import_parsing import ImportValidationError
from feedback_app.services.imports import DuplicateImport
from feedback_app.services.leasing import assignment_lease_next
from feedback_app.selectors.campaigns import campaign_default

pytestmark = pytest.mark.django_db
HH_TEST = Path(__file__).resolve().parents[3] / "../shared/data/hh-rlhf/harmless-base-test.jsonl.gz"
BITEXT = Path(__file__).resolve().parents[3] / "../shared/data/bitext-customer-support/customer_support_sample.csv"


@pytest.fixture(autouse=True)
def small_chunks(settings, tmp_path):
    settings.IMPORT_CHUNK_RECORDS = 2
    settings.IMPORT_CHUNK_PAUSE_SECONDS = 0
    settings.IMPORT_DIR = tmp_path / "imports"


def jsonl(*rows) -> bytes:
    return "\n".join(json.dumps(r) for r in rows).encode()


def prompts(n: int) -> bytes:
    return jsonl(*({"prompt": f"Question {i}", "responses": [f"yes {i}", f"no {i}"]} for i in range(n)))


def test_prompts_import_in_chunks_and_open_only_when_published():
    seen = []
    outcome = import_file(kind="prompts", data=prompts(5), filename="p.jsonl", on_progress=lambda status, progress: seen.append((status, progress)))
    assert outcome.batch.published and outcome.batch.counts == {"prompts": 5, "responses": 10, "comparisons": 5, "awaiting_generation": 0}
    assert Comparison.objects.filter(status=Comparison.Status.OPEN).count() == 5
    assert seen == [("staging", {"records": 5, "staged": 0}), ("staging", {"records": 5, "staged": 2}), ("staging", {"records": 5, "staged": 4}),
                    ("staging", {"records": 5, "staged": 5}), ("publishing", {"records": 5, "staged": 5})]


def test_staged_rows_are_invisible_to_leases_supply_stats_and_exports(rater):
    from feedback_app.models import PolicyVersion
    from django.utils import timezone

    policy = PolicyVersion.objects.create(name="p0", path="/nowhere", status="active")
    looked = []

    def while_staging(status, progress):
        if status == "publishing":
            assert Comparison.objects.filter(status=Comparison.Status.STAGED).count() == 3
            assert assignment_lease_next(campaign=campaign_default(), rater=rater) is None
            assert open_comparison_count() == 0 and overview_counters()["open_comparisons"] == 0
            assert not prompts_needing_comparisons(policy=policy, now=timezone.now()).filter(source="preferences:x.jsonl").exists()
            assert not prompts_needing_comparisons(policy=policy, now=timezone.now()).filter(source="import:p.jsonl").exists()
            assert not labels_for_export(filters=ExportFilters()).exists()
            looked.append(status)

    import_file(kind="prompts", data=prompts(3), filename="p.jsonl", on_progress=while_staging)
    assert assignment_lease_next(campaign=campaign_default(), rater=rater) is not None  # published: now it leases
    import_file(kind="preferences", data=jsonl(*({"prompt": f"q{i}", "chosen": "good", "rejected": "bad"} for i in range(3))),
                filename="x.jsonl", on_progress=lambda status, progress: status == "publishing" and (
                    PreferenceLabel.objects.count() == 0 and looked.append("labels unseen")))
    assert looked == ["publishing", "labels unseen"]
    assert labels_for_export(filters=ExportFilters()).count() == 3


def test_a_failing_chunk_removes_everything_staged(monkeypatch):
    real = import_jobs.prompt_rows_write
    calls = []

    def fail_on_third(**kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return real(**kwargs)

    monkeypatch.setattr(import_jobs, "prompt_rows_write", fail_on_third)
    with pytest.raises(RuntimeError):
        import_file(kind="prompts", data=prompts(5), filename="p.jsonl")
    assert len(calls) == 3
    assert not Prompt.objects.exists() and not Response.objects.exists() and not Comparison.objects.exists()
    assert not ImportBatch.objects.exists()


def test_publish_is_all_or_nothing(monkeypatch):
    def fail(**kwargs):
        raise RuntimeError("broker down inside publish")

    monkeypatch.setattr(import_jobs, "preference_labels_write", fail)
    rows = jsonl(*({"prompt": f"q{i}", "chosen": "good", "rejected": "bad"} for i in range(5)))
    with pytest.raises(RuntimeError):
        import_file(kind="preferences", data=rows, filename="x.jsonl")
    assert not Comparison.objects.exists() and not PreferenceLabel.objects.exists() and not Prompt.objects.exists()
    assert not ImportBatch.objects.exists()


def test_staged_remove_leaves_a_published_batch_alone():
    outcome = import_file(kind="prompts", data=prompts(3), filename="p.jsonl")
    staged_remove(batch_id=outcome.batch.pk)
    assert Comparison.objects.count() == 3


def test_preferences_publish_complete_comparisons_with_one_label_each():
    rows = jsonl(*({"prompt": f"q{i}", "chosen": "good", "rejected": "bad", "margin": 2.0} for i in range(5)))
    outcome = import_file(kind="preferences", data=rows, filename="x.jsonl")
    assert outcome.batch.counts == {"prompts": 5, "comparisons": 5, "labels": 5}
    assert Comparison.objects.filter(status=Comparison.Status.COMPLETE, label_count=1).count() == 5
    assert not Comparison.objects.filter(completed_at__isnull=True).exists()  # complete when published (the tallies read completions)
    for label in PreferenceLabel.objects.select_related("comparison__response_a", "comparison__response_b"):
        winner = label.comparison.response_a if label.winner == "a" else label.comparison.response_b
        assert winner.text == "good"


def test_identical_replies_fail_the_file_unless_skipped():
    rows = jsonl({"prompt": "q1", "chosen": "same", "rejected": "same"}, {"prompt": "q2", "chosen": "", "rejected": "no"},
                 {"prompt": "q3", "chosen": "", "rejected": " "})
    with pytest.raises(ImportValidationError) as info:
        import_file(kind="preferences", data=rows, filename="x.jsonl")
    assert [str(e) for e in info.value.errors] == ["line 1, field 'rejected': the same text as chosen",
                                                  "line 3, field 'rejected': the same text as chosen (both are empty)"]
    assert not Prompt.objects.exists()
    outcome = import_file(kind="preferences", data=rows, filename="x.jsonl", skip_invalid=True)
    assert [str(e) for e in outcome.skipped] == [str(e) for e in info.value.errors]
    (label,) = PreferenceLabel.objects.select_related("comparison__response_a", "comparison__response_b")
    winner = label.comparison.response_a if label.winner == "a" else label.comparison.response_b
    assert winner.text == ""  # an empty reply can be the preferred one


@pytest.mark.skipif(not HH_TEST.exists(), reason="the shared HH data is not on this machine")
def test_the_real_harmless_test_split_imports_as_it_is():
    data = gzip.decompress(HH_TEST.read_bytes())
    outcome = import_file(kind="preferences", data=data, filename="harmless-base-test.jsonl", skip_invalid=True)
    assert outcome.skipped == []
    assert outcome.batch.counts["labels"] == len([line for line in data.splitlines() if line.strip()])
    assert Response.objects.filter(text="").count() == 4


@pytest.mark.skipif(not HH_TEST.exists(), reason="the shared HH data is not on this machine")
def test_an_uploaded_gzip_file_is_imported_as_it_was_published(django_capture_on_commit_callbacks):
    """The HH split as its publisher ships it, .jsonl.gz, through the admin's upload: unpacked by its first bytes."""
    with django_capture_on_commit_callbacks(execute=True):
        job = import_job_create(kind="preferences", data=HH_TEST.read_bytes(), filename="harmless-base-test.jsonl.gz")
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE and job.error_total == 0
    assert job.import_batch.counts["labels"] == 2312 and job.import_batch.filename == "harmless-base-test.jsonl"


def test_gzip_is_known_by_its_bytes_and_hashed_unpacked():
    data = prompts(3)
    outcome = import_file(kind="prompts", data=gzip.compress(data), filename="p.jsonl.gz")
    assert outcome.batch.counts["prompts"] == 3 and outcome.batch.filename == "p.jsonl"
    with pytest.raises(DuplicateImport):  # the same rows again, not compressed: the same file
        import_file(kind="prompts", data=data, filename="p.jsonl")
    csv = b"prompt,response_1,response_2\nWhere?,Here,There\n"
    outcome = import_file(kind="prompts", data=gzip.compress(csv), filename="q.csv.gz")  # read as the CSV it holds
    assert outcome.batch.counts == {"prompts": 1, "responses": 2, "comparisons": 1, "awaiting_generation": 0}
    two_members = gzip.compress(prompts(1)) + gzip.compress(b"\n" + jsonl({"prompt": "Second member"})) + b"\0" * 8
    import_file(kind="prompts", data=two_members, filename="m.jsonl", allow_duplicate=True)  # any name: the bytes tell
    assert Prompt.objects.filter(text="Second member").exists()


@pytest.mark.parametrize("damage, expected", [
    (lambda packed: packed[:-12], "cannot read the file as gzip (it ends before its end marker: cut short?)"),
    (lambda packed: packed[:10] + b"\xff" * 8 + packed[18:], "cannot read the file as gzip (Error -3 while decompressing data"),
])
def test_a_broken_gzip_file_is_named_as_such_and_imports_nothing(damage, expected):
    with pytest.raises(ImportValidationError) as info:
        import_file(kind="prompts", data=damage(gzip.compress(prompts(40))), filename="p.jsonl.gz")
    assert info.value.total == 1 and str(info.value.errors[0]).startswith(expected)
    assert not Prompt.objects.exists() and not ImportBatch.objects.exists()


def test_a_gzip_file_that_unpacks_past_the_limit_is_refused_unread(settings):
    settings.IMPORT_MAX_UNPACKED_BYTES = 1000
    bomb = gzip.compress(b"\n" * 10_000_000)  # 10 MB of nothing, about 10 KB packed
    with pytest.raises(ImportValidationError) as info:
        import_file(kind="prompts", data=bomb, filename="p.jsonl.gz")
    assert str(info.value.errors[0]) == "the file unpacks to over 1,000 bytes (IMPORT_MAX_UNPACKED_BYTES)"
    import_file(kind="prompts", data=gzip.compress(prompts(3)), filename="p.jsonl.gz")  # under it: fine


def test_job_runs_once_records_progress_and_removes_its_file(admin_user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = import_job_create(kind="prompts", data=prompts(3), filename="p.jsonl", user=admin_user, required_labels=2)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE and job.progress == {"records": 3, "staged": 3}
    assert job.import_batch.created_by == admin_user and job.started_at and job.finished_at
    assert Comparison.objects.filter(required_labels=2).count() == 3
    assert not job.path.exists()
    import_job_execute(job_id=job.pk)  # a redelivered message
    import_job_execute(job_id=12345)  # a job that is gone
    assert Comparison.objects.count() == 3


def test_job_records_the_errors_of_a_bad_file_and_of_a_duplicate(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        bad = import_job_create(kind="prompts", data=b'{"prompt": ""}\n{"prompt": "ok", "metadata": {"x": NaN}}', filename="p.jsonl")
        import_job_create(kind="prompts", data=prompts(2), filename="p.jsonl")
        again = import_job_create(kind="prompts", data=prompts(2), filename="p.jsonl")
    bad.refresh_from_db()
    again.refresh_from_db()
    assert bad.status == "failed" and bad.error_total == 2
    assert bad.errors == ["line 1, field 'prompt': is empty", "line 2, field 'metadata.x': NaN is not a number JSON allows; use a finite number or null"]
    assert again.status == "failed" and "imported already" in again.errors[0]
    assert Prompt.objects.count() == 2


def test_a_job_whose_worker_is_stopping_ends_between_chunks_and_waits_in_the_queue_again(django_capture_on_commit_callbacks):
    """Asked after the file is read and after each chunk: a stop after the first chunk removes what was staged, and the job,
    its file kept, is queued again (its message sent again once the change commits); the next worker imports it all."""
    job = import_job_create(kind="prompts", data=prompts(5), filename="p.jsonl")
    asked = []

    def stop_after_a_chunk() -> bool:
        asked.append(True)
        return len(asked) == 3  # the file read, one chunk staged, then stop

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        import_job_execute(job_id=job.pk, should_stop=stop_after_a_chunk)
    job.refresh_from_db()
    assert job.status == "queued" and job.progress == {} and job.started_at is None and job.path.exists()
    assert not Prompt.objects.exists() and not ImportBatch.objects.exists() and not Comparison.objects.exists()
    assert len(callbacks) == 1  # the job's message, sent again
    import_job_execute(job_id=job.pk, should_stop=lambda: False)
    job.refresh_from_db()
    assert job.status == "done" and Prompt.objects.count() == 5 and not job.path.exists()


def test_job_whose_file_is_gone_fails_with_the_reason(django_capture_on_commit_callbacks):
    job = import_job_create(kind="prompts", data=prompts(1), filename="p.jsonl")
    job.path.unlink()
    import_job_execute(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and job.errors[0].startswith("cannot read the uploaded file")


def test_duplicate_check_still_applies():
    import_file(kind="prompts", data=prompts(1), filename="p.jsonl")
    with pytest.raises(DuplicateImport):
        import_file(kind="prompts", data=prompts(1), filename="again.jsonl")


def test_reap_fails_silent_jobs_resends_lost_ones_and_removes_abandoned_staging(django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    from feedback_app.services.import_jobs import import_jobs_reap
    from feedback_app.services.import_parsing import parse_prompts
    from feedback_app.services.imports import batch_create, prompt_rows_write

    long_ago = timezone.now() - timedelta(hours=1)
    dead = import_job_create(kind="prompts", data=prompts(2), filename="dead.jsonl")
    ImportJob.objects.filter(pk=dead.pk).update(status=ImportJob.Status.STAGING, heartbeat_at=long_ago)
    alive = import_job_create(kind="prompts", data=prompts(2), filename="alive.jsonl")
    ImportJob.objects.filter(pk=alive.pk).update(status=ImportJob.Status.STAGING, heartbeat_at=timezone.now())
    lost = import_job_create(kind="prompts", data=prompts(3), filename="lost.jsonl")
    ImportJob.objects.filter(pk=lost.pk).update(created_at=long_ago)
    batch = batch_create(kind="prompts", filename="dead.jsonl", sha256="x", user=None, allow_duplicate=False, published=False)
    prompt_rows_write(batch=batch, records=parse_prompts(prompts(2), filename="dead.jsonl"), required_labels=None, source="s",
                      status=Comparison.Status.STAGED)
    ImportBatch.objects.filter(pk=batch.pk).update(created_at=long_ago)
    Prompt.objects.filter(import_batch=batch).update(created_at=long_ago)

    with django_capture_on_commit_callbacks(execute=True):
        assert import_jobs_reap() == 1
    statuses = dict(ImportJob.objects.values_list("filename", "status"))
    assert statuses == {"dead.jsonl": "failed", "alive.jsonl": "staging", "lost.jsonl": "done"}
    assert not ImportBatch.objects.filter(pk=batch.pk).exists() and not Comparison.objects.filter(status=Comparison.Status.STAGED).exists()
    assert Comparison.objects.filter(status=Comparison.Status.OPEN).count() == 3  # the lost job, re-sent, ran
    assert dead.path.exists() and alive.path.exists()  # the dead job's file is kept to be tried again, as a failed job's


def test_a_failed_jobs_file_is_kept_to_try_again_with_other_choices_and_a_done_jobs_is_not(settings, admin_user,
                                                                                          django_capture_on_commit_callbacks):
    """A CSV of another shape fails without a column mapping; its file is kept IMPORT_KEEP_FAILED_HOURS, and a retry with a
    mapping imports it from the kept file (a job of its own, which records the job it retries, its file removed once done)."""
    from datetime import timedelta

    from feedback_app.services.import_jobs import import_job_retry

    data = b"instruction,intent\nWhere is my parcel?,track_order\nI want a refund,get_refund\n"
    with django_capture_on_commit_callbacks(execute=True):
        failed = import_job_create(kind="prompts", data=data, filename="requests.csv", user=admin_user)
    failed.refresh_from_db()
    assert failed.status == "failed" and failed.path.read_bytes() == data
    assert failed.file_kept_until == failed.finished_at + timedelta(hours=settings.IMPORT_KEEP_FAILED_HOURS)
    with django_capture_on_commit_callbacks(execute=True):
        retry = import_job_retry(job=failed, kind="prompts", user=admin_user, columns="prompt=instruction; tags=intent")
    retry.refresh_from_db()
    assert retry.status == "done" and retry.filename == "requests.csv" and retry.options["retry_of"] == failed.pk
    assert sorted(Prompt.objects.values_list("text", flat=True)) == ["I want a refund", "Where is my parcel?"]
    assert not retry.path.exists() and retry.file_kept_until is None  # done: removed
    assert failed.path.read_bytes() == data  # the failed job's own file is still kept, until its time is up


def test_a_retry_needs_a_kept_file(settings, django_capture_on_commit_callbacks):
    """A done job's file, a failed job's past its keep, or one kept 0 hours cannot be tried again: ImportFileGone says so."""
    from datetime import timedelta

    from django.utils import timezone

    from feedback_app.services.import_jobs import ImportFileGone, import_job_retry

    with django_capture_on_commit_callbacks(execute=True):
        done = import_job_create(kind="prompts", data=prompts(1), filename="p.jsonl")
        failed = import_job_create(kind="prompts", data=b'{"prompt": ""}', filename="empty.jsonl")
    done.refresh_from_db(), failed.refresh_from_db()
    with pytest.raises(ImportFileGone, match=f"the file of import job {done.pk} \\(p.jsonl\\) is no longer kept: upload it again"):
        import_job_retry(job=done, kind="prompts")
    ImportJob.objects.filter(pk=failed.pk).update(finished_at=timezone.now() - timedelta(hours=settings.IMPORT_KEEP_FAILED_HOURS, minutes=1))
    failed.refresh_from_db()
    assert failed.path.exists() and failed.file_kept_until is None  # past its keep, though the reaper has not run yet
    with pytest.raises(ImportFileGone):
        import_job_retry(job=failed, kind="prompts")
    assert ImportJob.objects.count() == 2  # nothing queued
    settings.IMPORT_KEEP_FAILED_HOURS = 0
    with django_capture_on_commit_callbacks(execute=True):
        unkept = import_job_create(kind="prompts", data=b'{"prompt": ""}', filename="empty.jsonl", allow_duplicate=True)
    unkept.refresh_from_db()
    assert unkept.status == "failed" and not unkept.path.exists()


def test_the_reaper_removes_the_files_no_job_keeps(settings, django_capture_on_commit_callbacks):
    """Kept: a queued job's, a failed job's within its keep, a new file of no job (its job's row may not be committed yet) or
    half-written. Removed: a failed job's past its keep, then those others once IMPORT_STALE_SECONDS old."""
    from datetime import timedelta

    from django.utils import timezone

    from feedback_app.services.import_jobs import import_files_expire

    queued = import_job_create(kind="prompts", data=prompts(1), filename="q.jsonl")
    with django_capture_on_commit_callbacks(execute=True):
        kept = import_job_create(kind="prompts", data=b'{"prompt": ""}', filename="kept.jsonl")
        expired = import_job_create(kind="prompts", data=b'{"prompt": " "}', filename="expired.jsonl")
    ImportJob.objects.filter(pk=expired.pk).update(finished_at=timezone.now() - timedelta(hours=settings.IMPORT_KEEP_FAILED_HOURS, minutes=1))
    folder = settings.IMPORT_DIR
    for name in ("99999", "99998.part"):
        (folder / name).write_bytes(b"x")
    assert import_files_expire(now=timezone.now()) == 1  # the expired job's
    assert import_files_expire(now=timezone.now() + timedelta(seconds=settings.IMPORT_STALE_SECONDS + 1)) == 2
    assert sorted(p.name for p in folder.iterdir()) == sorted([str(queued.pk), str(kept.pk)])


def test_a_long_file_name_still_fits_the_source_column():
    name = "a-very-long-export-name-from-some-labelling-vendor-2026-12-01-final-v3.jsonl"
    import_file(kind="prompts", data=prompts(1), filename=name)
    import_file(kind="preferences", data=jsonl({"prompt": "q", "chosen": "a", "rejected": "b"}), filename=name)
    assert sorted(Prompt.objects.values_list("source", flat=True)) == [f"import:{name}"[:64], f"preferences:{name}"[:64]]


@pytest.mark.skipif(not BITEXT.exists(), reason="the shared Bitext data is not on this machine")
def test_the_real_customer_service_csv_imports_as_published_through_a_column_mapping(settings, django_capture_on_commit_callbacks):
    """Its requests become prompts awaiting generated replies, tagged with intent and category; its reference replies stay out."""
    settings.IMPORT_CHUNK_RECORDS = 1000
    with django_capture_on_commit_callbacks(execute=True):
        job = import_job_create(kind="prompts", data=BITEXT.read_bytes(), filename=BITEXT.name,
                                columns="prompt=instruction; tags=intent,category; metadata=entity_type")
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE and job.error_total == 0
    rows = list(csv.DictReader(io.StringIO(BITEXT.read_text(encoding="utf-8"))))
    assert job.import_batch.counts["prompts"] == job.import_batch.counts["awaiting_generation"] == len(rows)
    assert job.left_out == [c for c in rows[0] if c not in ("instruction", "intent", "category", "entity_type")]
    first = Prompt.objects.get(import_batch=job.import_batch, text=rows[0]["instruction"])
    assert set(first.tags.values_list("name", flat=True)) == {slugify(rows[0]["intent"]), slugify(rows[0]["category"])}
    assert not Response.objects.filter(text=rows[0]["response"]).exists()
