"""Training data kept by the worker, in memory and on disk: the same labels as a full read, and only the new ones read again."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from feedback_app.models import Comparison, PreferenceLabel, Prompt, QualityTallied
from feedback_app.selectors.campaigns import campaign_default
from feedback_app.services import training_data
from feedback_app.services.labeling import label_undo_last
from feedback_app.services.quality_tally import quality_tally_close
from feedback_app.services.training_data import labels_for_training, training_data_path

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("new_worker")]


def header(path) -> dict:
    return json.loads(path.read_bytes().split(b"\n", 1)[0])


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
    recent = [make(now - timedelta(seconds=10), "ba")]  # completed under CLOSE_AFTER ago: not tallied yet
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


def test_a_bounded_read_is_the_full_read_up_to_its_label(history):
    """``through_label_id``: the labels of a full read up to that id, live or kept, and the range ends there."""
    everything = as_tuples(labels_for_training()[0])
    ids = sorted(row[0] for row in everything)
    for tallied in (False, True):
        if tallied:
            quality_tally_close(now=history["now"])
            labels_for_training()  # keeps the old comparisons
        for bound in (ids[0], ids[4], ids[-2]):
            labels, data_range = labels_for_training(through_label_id=bound)
            assert as_tuples(labels) == [row for row in everything if row[0] <= bound]
            assert data_range == {"first_label_id": ids[0], "last_label_id": bound, "n_labels": ids.index(bound) + 1}
    assert as_tuples(labels_for_training()[0]) == everything  # what a bounded read left out is still kept for the next


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
    assert header(training_data_path(campaign_id=1))["generation"] == str(QualityTallied.objects.get().generation)


def test_an_undone_kept_comparison_is_read_live_and_replaced_when_it_completes_again(history, undoable_completion, undoable_label, monkeypatch):
    """An undo reopens a comparison the worker keeps: no new generation; its kept labels give way to the live ones, and when it
    completes again its new segment replaces them, in this worker's memory and for a worker that reads the file."""
    now, raters = history["now"], history["raters"]
    comparison, latecomer, undone = undoable_completion(raters[0], now=now)
    quality_tally_close(now=now)
    generation = QualityTallied.objects.get().generation
    assert undone.pk in {label.pk for label in labels_for_training()[0]}  # kept
    label_undo_last(rater=latecomer, campaign=campaign_default(), now=now)
    assert QualityTallied.objects.get().generation == generation
    counted = read_rows(monkeypatch)
    labels, data_range = labels_for_training()
    assert sorted(label.pk for label in labels) == sorted(PreferenceLabel.objects.values_list("pk", flat=True))
    assert data_range["n_labels"] == len(labels)
    assert sum(counted) == 5  # live: the reopened comparison's label, the open ones' and the gold pair's newest; nothing again
    again = undoable_label(comparison, raters[1], winner="a", at=now + timedelta(minutes=1))
    Comparison.objects.filter(pk=comparison.pk).update(status="complete", label_count=2, completed_at=now + timedelta(minutes=1))
    quality_tally_close(now=now + timedelta(minutes=5))
    expected = sorted(PreferenceLabel.objects.values_list("pk", flat=True))
    assert again.pk in expected and undone.pk not in expected
    assert sorted(label.pk for label in labels_for_training()[0]) == expected
    training_data.forget()  # a worker that starts reads it all from the file, the comparison's second segment replacing its first
    counted.clear()
    assert sorted(label.pk for label in labels_for_training()[0]) == expected
    assert sum(counted) == 1  # the open comparison's label, live; the rest from the file


def test_an_undone_kept_gold_label_is_left_out(history, make_user, undoable_label):
    rater = make_user()
    gold = Comparison.objects.get(is_gold=True)
    undone = undoable_label(gold, rater, winner="b", at=history["now"] - timedelta(minutes=3))
    quality_tally_close(now=history["now"])
    assert undone.pk in {label.pk for label in labels_for_training()[0]}  # kept, as gold labels are, once made
    label_undo_last(rater=rater, campaign=campaign_default(), now=history["now"])
    labels = labels_for_training()[0]
    assert undone.pk not in {label.pk for label in labels} and len(labels) == PreferenceLabel.objects.count()


def test_an_unreadable_file_is_read_again_from_the_database(history, caplog):
    quality_tally_close(now=history["now"])
    expected = as_tuples(labels_for_training()[0])
    training_data_path(campaign_id=1).write_text("{not json")
    training_data.forget()
    assert as_tuples(labels_for_training()[0]) == expected
    assert "unreadable" in caplog.text
    assert header(training_data_path(campaign_id=1))["format"] == training_data.FORMAT


def complete_the_open_one(history, *, at):
    """A second label completes the open comparison; a close at ``at`` keeps it."""
    late = PreferenceLabel.objects.create(comparison=history["open"][0], rater=history["raters"][1], winner="b")
    Comparison.objects.filter(pk=history["open"][0].pk).update(completed_at=history["now"], status="complete", label_count=2, required_labels=2)
    quality_tally_close(now=at)
    return late


def test_a_worker_that_starts_reads_the_kept_labels_from_the_file_not_the_database(history, monkeypatch):
    quality_tally_close(now=history["now"])
    expected = as_tuples(labels_for_training()[0])
    training_data.forget()
    counted = read_rows(monkeypatch)
    assert as_tuples(labels_for_training()[0]) == expected
    assert sum(counted) == 4  # the live part only


def test_a_segment_another_worker_appended_is_read_from_the_file(history, monkeypatch):
    quality_tally_close(now=history["now"])
    labels_for_training()
    first = dict(training_data._held)  # this worker's memory
    late = complete_the_open_one(history, at=history["now"] + timedelta(hours=2))
    training_data._held.clear()
    training_data._held.update({path: training_data._Kept(**{name: getattr(kept, name) for name in ("generation", "through", "inode", "offset")},
                                                          labels=list(kept.labels)) for path, kept in first.items()})
    expected = as_tuples(labels_for_training()[0])  # another worker with the same memory reads the new span and appends it
    assert len(training_data_path(campaign_id=1).read_bytes().splitlines()) == 3  # the header and two segments
    training_data._held.clear()
    training_data._held.update(first)
    counted = read_rows(monkeypatch)
    labels = labels_for_training()[0]
    assert as_tuples(labels) == expected and late.pk in {label.pk for label in labels}
    assert sum(counted) == 0  # nothing is live after that close, and the new span came from the file


def test_a_segment_written_twice_is_read_once(history):
    quality_tally_close(now=history["now"])
    expected = as_tuples(labels_for_training()[0])
    path = training_data_path(campaign_id=1)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines + lines[1:]))  # two workers appended the same span
    training_data.forget()
    assert as_tuples(labels_for_training()[0]) == expected


def test_a_line_a_crash_cut_short_is_ignored_then_cut_off(history, monkeypatch):
    quality_tally_close(now=history["now"])
    expected = as_tuples(labels_for_training()[0])
    path = training_data_path(campaign_id=1)
    with path.open("ab") as file:
        file.write(b'{"since":"2026-01-01T00:00:00+00:00","through":"2026')  # a worker died mid-append
    training_data.forget()
    assert as_tuples(labels_for_training()[0]) == expected
    late = complete_the_open_one(history, at=history["now"] + timedelta(hours=2))
    assert late.pk in {label.pk for label in labels_for_training()[0]}
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) == 3 and all(line.endswith(b"\n") and json.loads(line) for line in lines)
    training_data.forget()
    counted = read_rows(monkeypatch)
    assert late.pk in {label.pk for label in labels_for_training()[0]} and sum(counted) == 0  # all of it from the file


def test_kept_labels_are_not_read_again_after_the_exclusions_change(history, monkeypatch):
    quality_tally_close(now=history["now"])
    labels_for_training()
    counted = read_rows(monkeypatch)
    for excluded in history["old"][:2]:
        Comparison.objects.filter(pk=excluded.pk).update(excluded=True)
        labels = labels_for_training()[0]
        assert excluded.pk not in {label.comparison_id for label in labels}
    Comparison.objects.filter(pk=history["old"][0].pk).update(excluded=False)
    assert history["old"][0].pk in {label.comparison_id for label in labels_for_training()[0]}
    assert sum(counted) == 4 * 3  # the live part each time


@pytest.mark.parametrize("seed", range(5))
def test_merging_and_leaving_out_keep_the_order_of_a_full_sort(seed):
    import random

    from feedback_app.services.training_data import ComparisonTexts, PromptText, Text, TrainingLabel, _merged, _without

    rng = random.Random(seed)

    def label(pk: int, cid: int) -> TrainingLabel:
        texts = ComparisonTexts(pk=cid, prompt_id=cid, prompt=PromptText("p", []), response_a=Text("a"), response_b=Text("b"))
        return TrainingLabel(pk=pk, comparison=texts, rater_id=1, judge_version_id=None, winner="a", strength=1, rewrite_id=None, rewrite=None)

    everything = [label(pk, rng.randrange(200)) for pk in rng.sample(range(10_000), 600)]
    for n_new in (0, 5, 40, 300):  # few (a search each) and many (a sort)
        new = sorted(everything[:n_new], key=lambda x: x.order)
        kept = sorted(everything[n_new:], key=lambda x: x.order)
        merged = _merged(kept, new)
        assert [x.order for x in merged] == sorted(x.order for x in everything)
        gone = sorted(rng.sample(range(200), 30))
        assert [x.order for x in _without(merged, gone)] == [x.order for x in merged if x.comparison_id not in gone]
