import hashlib
import json

import pytest

from feedback_app.models import Comparison, ImportBatch, PreferenceLabel, Prompt, Response
from feedback_app.services.import_parsing import ImportValidationError
from feedback_app.services.imports import DuplicateImport, comparison_pairs, preferences_import, prompts_import, prompts_import_api

pytestmark = pytest.mark.django_db


def jsonl(*rows) -> bytes:
    return "\n".join(json.dumps(r) for r in rows).encode()


def test_prompts_with_responses_become_comparisons():
    batch = prompts_import(
        data=jsonl(
            {"prompt": "Two", "responses": ["a", "b"], "tags": ["billing"]},
            {"prompt": "Three", "responses": ["a", "b", "c"]},
            {"prompt": "Waiting for the generator"},
        ),
        filename="p.jsonl",
        required_labels=2,
    )
    assert batch.counts == {"prompts": 3, "responses": 5, "comparisons": 4, "awaiting_generation": 1}
    assert Comparison.objects.filter(required_labels=2, status="open").count() == 4
    two = Prompt.objects.get(text="Two")
    assert list(two.tags.values_list("name", flat=True)) == ["billing"]
    for c in Comparison.objects.all():
        assert c.response_a.prompt_id == c.prompt_id == c.response_b.prompt_id and c.response_a_id != c.response_b_id


def test_a_bad_line_imports_nothing():
    with pytest.raises(ImportValidationError):
        prompts_import(data=jsonl({"prompt": "fine", "responses": ["a", "b"]}, {"prompt": "bad", "responses": ["a"]}), filename="p.jsonl")
    assert not Prompt.objects.exists() and not Response.objects.exists() and not ImportBatch.objects.exists()


def test_a_failure_while_writing_rolls_everything_back(monkeypatch):
    """Nothing is half-written even if the database refuses the last step."""
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Comparison.objects, "bulk_create", broken)
    with pytest.raises(RuntimeError):
        prompts_import(data=jsonl({"prompt": "fine", "responses": ["a", "b"]}), filename="p.jsonl")
    assert not Prompt.objects.exists() and not ImportBatch.objects.exists()


def test_the_same_file_twice_is_refused_unless_asked():
    data = jsonl({"prompt": "once", "responses": ["a", "b"]})
    prompts_import(data=data, filename="p.jsonl")
    with pytest.raises(DuplicateImport, match="imported already"):
        prompts_import(data=data, filename="renamed.jsonl")
    prompts_import(data=data, filename="p.jsonl", allow_duplicate=True)
    assert Prompt.objects.count() == 2


def test_prompts_posted_to_the_api_become_comparisons(admin_user):
    """Posted items are imported as from a file named "api", their hash taken over the JSON with sorted keys."""
    items = [{"prompt": "Two", "responses": ["a", "b"]}, {"responses": ["x", "y", "z"], "prompt": "Three"}]
    batch = prompts_import_api(items=items, user=admin_user, required_labels=2)
    assert batch.counts == {"prompts": 2, "responses": 5, "comparisons": 4, "awaiting_generation": 0}
    assert (batch.filename, batch.created_by, batch.sha256) == ("api", admin_user, hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest())
    assert set(Prompt.objects.values_list("source", flat=True)) == {"api"}
    assert set(Comparison.objects.values_list("required_labels", flat=True)) == {2}


def test_the_same_items_posted_twice_are_refused_unless_asked():
    """Keys in another order are the same import."""
    prompts_import_api(items=[{"prompt": "once", "responses": ["a", "b"]}])
    with pytest.raises(DuplicateImport, match="imported already"):
        prompts_import_api(items=[{"responses": ["a", "b"], "prompt": "once"}])
    prompts_import_api(items=[{"prompt": "once", "responses": ["a", "b"]}], allow_duplicate=True)
    assert Prompt.objects.count() == 2


def test_a_bad_posted_item_imports_nothing():
    """Errors name the item, numbered from 1."""
    with pytest.raises(ImportValidationError) as refused:
        prompts_import_api(items=[{"prompt": "fine", "responses": ["a", "b"]}, {"prompt": "bad", "responses": ["a"]}])
    assert "item 2" in str(refused.value.errors[0])
    assert not Prompt.objects.exists() and not ImportBatch.objects.exists()


def test_comparison_pairs():
    assert comparison_pairs(2) == [(0, 1)]
    assert len(comparison_pairs(4)) == 6
    pairs = comparison_pairs(7, seed=3)
    assert len(pairs) == 7 and all(i != j for i, j in pairs)
    assert sorted({i for pair in pairs for i in pair}) == list(range(7))


def test_preferences_become_complete_labelled_comparisons():
    rows = [{"prompt": f"p{i}", "chosen": f"good {i}", "rejected": f"bad {i}", "margin": 1.0} for i in range(40)]
    batch = preferences_import(data=jsonl(*rows), filename="trl.jsonl")
    assert batch.counts["labels"] == 40
    assert Comparison.objects.filter(status="complete", label_count=1).count() == 40
    assert not Comparison.objects.filter(completed_at__isnull=True).exists()  # complete, so completed now
    winners = set()
    for label in PreferenceLabel.objects.select_related("comparison__response_a", "comparison__response_b"):
        assert label.rater_id is None and label.strength == 3
        chosen = label.comparison.response_a if label.winner == "a" else label.comparison.response_b
        assert chosen.text.startswith("good")
        winners.add(label.winner)
    assert winners == {"a", "b"}  # the winner is not always in the same column
