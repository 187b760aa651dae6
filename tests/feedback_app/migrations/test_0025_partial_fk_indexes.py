"""Migration 0025: six mostly-NULL foreign keys are indexed over the rows where they are set, and look-ups by key still read them."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from feedback_app.models import Comparison, ImportBatch, PreferenceLabel

PARTIAL = {"feedback_app_comparison": {"comparison_policy": "policy_version_id", "comparison_reward_model": "reward_model_version_id",
                                       "comparison_import_batch": "import_batch_id", "comparison_reviewed_by": "reviewed_by_id"},
           "feedback_app_preferencelabel": {"label_import_batch": "import_batch_id", "label_judge_version": "judge_version_id"}}
BEFORE = [("feedback_app", "0024_reward_scoring")]


def _indexes(table: str) -> dict[str, str]:
    """{name: definition} of the table's indexes, as the database keeps them."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
        else:
            cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s AND sql IS NOT NULL", [table])
        return dict(cursor.fetchall())


def _on_column(table: str, column: str) -> dict[str, str]:
    return {name: sql for name, sql in _indexes(table).items() if sql.split("(", 1)[1].split(")", 1)[0].strip('" ') == column}


def _migrate(target) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target)


@pytest.mark.django_db(transaction=True)
def test_each_key_has_one_index_over_its_set_rows_and_the_migration_goes_back():
    for table, indexes in PARTIAL.items():
        for name, column in indexes.items():
            assert list(_on_column(table, column)) == [name], (table, column)  # the full index is gone
            assert "WHERE" in _on_column(table, column)[name] and "NOT NULL" in _on_column(table, column)[name].upper()

    latest = [key for key in MigrationExecutor(connection).loader.graph.leaf_nodes() if key[0] == "feedback_app"]
    _migrate(BEFORE)
    try:
        for table, indexes in PARTIAL.items():
            for column in indexes.values():
                (definition,) = _on_column(table, column).values()  # one full index, as Django names it for a foreign key
                assert "WHERE" not in definition, definition
    finally:
        _migrate(latest)
    assert all(list(_on_column(table, column)) == [name] for table, indexes in PARTIAL.items() for name, column in indexes.items())


@pytest.mark.django_db
def test_a_look_up_by_key_reads_the_partial_index(make_comparisons):
    batch = ImportBatch.objects.create(kind="prompts", filename="p.jsonl", sha256="0" * 64)
    first, _ = make_comparisons(2)
    Comparison.objects.filter(pk=first.pk).update(import_batch=batch)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")  # a table of two rows is read whole otherwise; this asks whether the index can serve
            # and as a bitmap scan, which needs the look-up's key: a walk of the primary key's whole index in its order, with a
            # filter, costs about as little on two rows, and was chosen once earlier tests had left the table's size estimated
            cursor.execute("SET LOCAL enable_indexscan = off")
    assert "comparison_import_batch" in Comparison.objects.filter(import_batch=batch).explain()
    assert "label_judge_version" in PreferenceLabel.objects.filter(judge_version_id__in=[1, 2]).explain()
    assert list(Comparison.objects.filter(import_batch=batch)) == [first]


@pytest.mark.django_db
def test_a_deleted_batch_is_let_go_by_its_comparisons(make_comparisons):
    batch = ImportBatch.objects.create(kind="prompts", filename="p.jsonl", sha256="0" * 64)
    first, second = make_comparisons(2)
    Comparison.objects.filter(pk=first.pk).update(import_batch=batch)
    batch.delete()  # SET_NULL: the delete finds the batch's comparisons by the partial index
    assert list(Comparison.objects.values_list("pk", "import_batch_id")) == [(first.pk, None), (second.pk, None)]
