"""Training data kept on the worker's disk: the same labels as a full read, and only the new ones read from the database."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from feedback_app.models import Comparison, PreferenceLabel, Prompt, QualityTallied
from feedback_app.services import training_data
from feedback_app.services.quality_tally import quality_tally_close
from feedback_app.services.training_data import labels_for_training, training_data_path

pytestmark = pytest.mark.django_db


def as_tuples(labels) -> list[tuple]:
    return [(label.pk, label.comparison_id, label.comparison.prompt_id, label.comparison.prompt.text, label.comparison.prompt.context,
             label.comparison.response_a.text, label.comparison.response_b.text, label.rater_id, label.judge_version_id, label.winner,
             label.strength, label.rewrite_id, label.rewrite.text if label.rewrite else None) for label in labels]


@pytest.fixture
def history(make_user):
    now = timezone.now()
    raters = [make_user() for _ in range(3)]

    def make(completed_at, winners, *, text="Where is my parcel?"):
        prompt = Prompt.objects.create(text=text, context=[{"role": "user", "content": "Hello"}])
        a, b = prompt.responses.create(text="It left today."), prompt.responses.create(text="It is lost.")
        c = Comparison.objects.create(prompt=prompt, response_a=a, response_b=b, required_labels=len(winners), label_count=len(winners),
                                      completed_at=completed_at, status="complete" if completed_at else "open")
        for rater, winner in zip(raters, winners):
            PreferenceLabel.objects.create(comparison=c, rater=rater, winner=winner, strength=3)
        return c

    old = [make(now - timedelta(hours=5, minutes=i), "aab"[: 2 + i % 2]) for i in range(4)]
    rewrite = old[0].prompt.responses.create(text="It left the depot today; it arrives tomorrow.")
    PreferenceLabel.objects.filter(comparison=old[0], rater=raters[0]).update(rewrite=rewrite, edited_text=rewrite.text)
    recent = [make(now - timedelta(minutes=10), "ba")]
    open_ = [make(None, "a")]
    gold = make(None, "abb")
    Comparison.objects.filter(pk=gold.pk).update(is_gold=True, gold_winner="a", status="open")
    PreferenceLabel.objects.filter(comparison=gold, rater__in=raters[:2]).update(created_at=now - timedelta(hours=4))
    return {"now": now, "old": old, "recent": recent, "open": open_, "raters": raters}


def read_rows(monkeypatch) -> list[int]:
    """Count the label rows training reads from the database."""
    counted = []
    records = training_data._records

    def counting(labels):
        result = records(labels)
        counted.append(sum(len(r[6]) for r in result))
        return result

    monkeypatch.setattr(training_data, "_records", counting)
    return counted


def test_kept_labels_are_those_of_a_full_read_and_only_new_ones_are_read_again(history, monkeypatch):
    expected = as_tuples(labels_for_training()[0])  # no tallies yet: everything from the database
    assert len(expected) == PreferenceLabel.objects.count()
    quality_tally_close(now=history["now"])
    counted = read_rows(monkeypatch)
    assert as_tuples(labels_for_training()[0]) == expected  # the first run reads everything once and keeps what completed
    assert training_data_path(campaign_id=1).exists() and sum(counted) == len(expected)
    counted.clear()
    assert as_tuples(labels_for_training()[0]) == expected
    assert sum(counted) == 4  # the recent and the open comparisons' labels, and the gold pair's newest
    # a new label, and a close later: the file grows by what completed since
    late = PreferenceLabel.objects.create(comparison=history["open"][0], rater=history["raters"][1], winner="b")
    Comparison.objects.filter(pk=history["open"][0].pk).update(completed_at=history["now"], status="complete", label_count=2, required_labels=2)
    quality_tally_close(now=history["now"] + timedelta(hours=2))
    counted.clear()
    labels, data_range = labels_for_training()
    assert late.pk in {label.pk for label in labels} and data_range["n_labels"] == len(expected) + 1
    assert sum(counted) == 5  # the recent and the once-open comparisons and the newest gold label, read once into the file
    counted.clear()
    labels_for_training()
    assert sum(counted) == 0


def test_exclusions_and_held_out_prompts_apply_to_kept_labels(history):
    quality_tally_close(now=history["now"])
    labels_for_training()  # keeps the old comparisons
    excluded, held_out = history["old"][1], history["old"][2]
    Comparison.objects.filter(pk=excluded.pk).update(excluded=True)
    labels, data_range = labels_for_training(exclude_prompt_ids=[held_out.prompt_id])
    assert {label.comparison_id for label in labels}.isdisjoint({excluded.pk, held_out.pk})
    assert data_range["n_labels"] == len(labels) == PreferenceLabel.objects.exclude(comparison__in=[excluded, held_out]).count()


def test_a_deleted_kept_label_starts_a_new_generation_and_the_file_is_read_again(history):
    quality_tally_close(now=history["now"])
    labels_for_training()
    generation = QualityTallied.objects.get().generation
    gone = PreferenceLabel.objects.filter(comparison=history["old"][3]).first()
    gone.delete()
    assert gone.pk not in {label.pk for label in labels_for_training()[0]}
    quality_tally_close(now=history["now"])
    assert QualityTallied.objects.get().generation != generation
    labels = labels_for_training()[0]
    assert gone.pk not in {label.pk for label in labels} and len(labels) == PreferenceLabel.objects.count()
    assert json.loads(training_data_path(campaign_id=1).read_text())["generation"] == str(QualityTallied.objects.get().generation)


def test_an_unreadable_file_is_read_again_from_the_database(history, caplog):
    quality_tally_close(now=history["now"])
    expected = as_tuples(labels_for_training()[0])
    training_data_path(campaign_id=1).write_text("{not json")
    assert as_tuples(labels_for_training()[0]) == expected
    assert "unreadable" in caplog.text
    assert json.loads(training_data_path(campaign_id=1).read_text())["format"] == training_data.FORMAT
