"""Costs as the studio grows (issue 12): fill a scratch studio to each size, then measure what must stay flat.

The fill is bulk inserts shaped like a studio's history: ``--raters`` raters, five labels per
comparison from five of them (a submitted lease behind each), their review marks set as the
labeling services set them; the newest ``--max-open`` comparisons left open and part-labelled (a
backlog, the same at every size: the supply keeps it bounded, so it does not grow with the
history); the labels spread back in time at a steady rate (``--labels-per-day``), so the last
48 hours hold the same number of labels at every size and only the history grows. Then the
last ``--live-seconds`` (120) up to now are filled at the same rate, as a studio labelling at
that rate holds them, and the closes run as the beat runs them: what they leave is the live window
every figure's live part reads (at 300 labels a second, about 9,000 labels of completions not yet
tallied and 18,000 to 36,000 labels not yet counted in their hours; a handful at the default
rate). At each size, in this process (Django's test client, no HTTP):

- **next + label**: one of the fill's raters (whose own history grows with the studio) labels
  fresh comparisons, ``label?next=1`` and the two-call flow; CPU per label (this process's
  accounting; on PostgreSQL the server's work is in the wall time) and SQL statements per label;
- **pages**: the dashboard's overview, models, quality, review and arena pages, as a researcher;
- **stats**: every ``/api/v1/stats/<name>/``;
- **export**: the whole campaign as raw JSONL (a row per label), cost per label exported;
- **refit data**: what a fast refit does before it fits (read the labels, trust weights and verdicts, make the pairs and their
  facts): the first run after a rebuild (every label) and a later one (the labels and pairs it kept, and those since), and
  beside it a later run as it was before pairs were kept (every label aggregated); ``--refit-only`` measures this alone; **scoring**: what planning a chunk reads once a new
  version is live (a walk step over new labels, a sweep step over old scores; the model itself is not run).

Each figure is printed with its ratio to the smallest size; the issue asks that none pass 2x. Before measuring, this
process tunes its collector as a web process does (``request_threads.collector_tuned``; untuned, agreement took 210 ms not 145).

    .venv/bin/python -m bench.label_growth --sizes 10000,100000
    DATABASE_URL=postgres://... .venv/bin/python -m bench.label_growth --sizes 10000,100000,1000000 --json growth.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

from bench.label_profile import Rater, setup, statements, timed
from bench.refit_data import measure_refit_data

PAGES = ("/dashboard/", "/dashboard/models/", "/dashboard/quality/", "/dashboard/review/", "/dashboard/arena/")
PER_COMPARISON = 5
RATER_NAME = "growth-rater-{:05d}"  # the fill's raters, by their index
BATCH_COMPARISONS = 2000


class Fill:
    """The scratch studio's history: raters, and complete comparisons with their labels, added batch by batch."""

    def __init__(self, *, raters: int, labels_per_day: int, open_share: float, max_open: int, seed: int, live_seconds: float) -> None:
        from django.contrib.auth import get_user_model
        from django.utils import timezone

        from feedback_app.models import Profile, Role

        User = get_user_model()
        users = User.objects.bulk_create([User(username=RATER_NAME.format(i)) for i in range(raters)], batch_size=1000)
        Profile.objects.bulk_create([Profile(user=u, role=Role.RATER) for u in users], batch_size=1000)
        self.rater_ids = [u.pk for u in users]
        self.labels, self.comparisons, self.open, self.open_share, self.max_open = 0, 0, 0, open_share, max_open
        # the history ends where the live window (``live``) begins
        self.rng, self.now, self.seconds_per_label = random.Random(seed), timezone.now() - timedelta(seconds=live_seconds), 86400 / labels_per_day
        self.live_first, self.comparisons_last_pk, self.labels_last_pk = None, 0, 0

    def grow_to(self, labels: int) -> float:
        """Add complete comparisons until the history holds ``labels`` labels; return the seconds it took."""
        started = time.perf_counter()
        self._restamp_live()
        while self.labels < labels:
            self._batch(max(1, min(BATCH_COMPARISONS, (labels - self.labels) // PER_COMPARISON)))
        return time.perf_counter() - started

    def live(self, seconds: float, slices: int = 24) -> None:
        """Add the labels of the last ``seconds`` up to now at the fill's rate (complete comparisons, spread over the window): the
        closes that follow leave the newest of them live."""
        from django.utils import timezone

        self._restamp_live()
        n, now = round(seconds / self.seconds_per_label / PER_COMPARISON), timezone.now()
        self.live_first = (self.comparisons_last_pk + 1, self.labels_last_pk + 1)
        for k in range(slices):
            share = n * (k + 1) // slices - n * k // slices
            for start in range(0, share, BATCH_COMPARISONS):
                self._batch(min(BATCH_COMPARISONS, share - start), when=now - timedelta(seconds=seconds * (k + 0.5) / slices), backlog=False)

    def _restamp_live(self) -> None:
        """Move the last size's live window to the newest end of the history (a later size's closes must not find it live)."""
        from feedback_app.models import Comparison, PreferenceLabel

        if self.live_first is not None:
            comparisons, labels = self.live_first
            Comparison.objects.filter(pk__gte=comparisons).update(created_at=self.now, completed_at=self.now)
            PreferenceLabel.objects.filter(pk__gte=labels).update(created_at=self.now)
            self.live_first = None

    def _batch(self, n: int, *, when=None, backlog: bool = True) -> None:
        from django.db import transaction

        from feedback_app.models import Assignment, Comparison, PreferenceLabel, Prompt, Response
        from feedback_app.selectors.review import review_marks

        rng, first = self.rng, self.comparisons
        # the newest history is nearest now: label k of the fill is k / rate seconds old
        when = when or self.now - timedelta(seconds=(self.labels + n * PER_COMPARISON / 2) * self.seconds_per_label)
        with transaction.atomic():
            prompts = Prompt.objects.bulk_create([Prompt(text=f"Growth request {first + i}: my order has not arrived.", source="bench:growth")
                                                  for i in range(n)])
            replies = Response.objects.bulk_create([Response(prompt=p, text=f"Reply {k} to request {p.pk}.") for p in prompts for k in (0, 1)])
            # a share is the backlog: still open, part-labelled
            given = []
            for _ in prompts:
                left_open = backlog and rng.random() < self.open_share and self.open + len([g for g in given if g < PER_COMPARISON]) < self.max_open
                given.append(rng.randrange(PER_COMPARISON) if left_open else PER_COMPARISON)
            votes = []
            for g in given:
                better = rng.choice("ab")
                votes.append([better if rng.random() < 0.75 else rng.choice(["a", "b", "tie", "both_bad"]) for _ in range(g)])
            comparisons = Comparison.objects.bulk_create([
                Comparison(prompt=p, response_a=replies[2 * i], response_b=replies[2 * i + 1], required_labels=PER_COMPARISON, label_count=given[i],
                           status=Comparison.Status.COMPLETE if given[i] == PER_COMPARISON else Comparison.Status.OPEN,
                           completed_at=when if given[i] == PER_COMPARISON else None, **review_marks(votes[i], flagged=False))
                for i, p in enumerate(prompts)])
            self.open += sum(1 for g in given if g < PER_COMPARISON)
            assignments, labels = [], []
            for i, c in enumerate(comparisons):
                for k, winner in enumerate(votes[i]):
                    rater = self.rater_ids[((first + i) * PER_COMPARISON + k) % len(self.rater_ids)]
                    a_on_left = rng.random() < 0.5
                    assignments.append(Assignment(comparison=c, rater_id=rater, a_on_left=a_on_left, status=Assignment.Status.SUBMITTED,
                                                  leased_at=when, lease_expires_at=when + timedelta(minutes=10), finished_at=when))
                    labels.append(PreferenceLabel(comparison=c, campaign_id=c.prompt.campaign_id, rater_id=rater, winner=winner, strength=rng.choice((1, 2, 3)),
                                                  a_on_left=a_on_left, time_on_task_ms=rng.randint(2000, 30000), guidelines_version=0))
            Assignment.objects.bulk_create(assignments, batch_size=5000)
            for label, assignment in zip(labels, assignments):
                label.assignment = assignment
            PreferenceLabel.objects.bulk_create(labels, batch_size=5000)
            # auto_now_add stamped them now; put them where this batch sits in the history
            if labels:
                PreferenceLabel.objects.filter(pk__gte=labels[0].pk, pk__lte=labels[-1].pk).update(created_at=when)
            Comparison.objects.filter(pk__gte=comparisons[0].pk, pk__lte=comparisons[-1].pk).update(created_at=when)
        self.comparisons += n
        self.labels += len(labels)
        self.comparisons_last_pk, self.labels_last_pk = comparisons[-1].pk, labels[-1].pk if labels else self.labels_last_pk


def summaries_close() -> float:
    """Count the closed hours' labels, as the task every ten minutes has in a studio that grew to this size.

    The fill writes history backwards in time, into hours a studio would long have closed, so the
    counts start again from nothing at each size (a real studio only ever adds labels to now).
    Then the quality tallies are rebuilt; return the seconds that took.
    """
    from feedback_app.models import LabelHourCount, LabelHoursClosed, LabelMinuteCount
    from feedback_app.services.label_tally import label_hours_close

    LabelHoursClosed.objects.all().delete()
    LabelHourCount.objects.all().delete()
    LabelMinuteCount.objects.all().delete()  # the close writes the last minutes again
    while label_hours_close():
        pass
    return quality_tally_rebuild()


def live_window() -> dict:
    """Return how many labels the closes left live: not yet in their hours' counts, and (of comparisons completed since the last
    close, or open) not yet in the quality tallies."""
    from feedback_app.models import Comparison, PreferenceLabel, QualityTallied
    from feedback_app.selectors.label_tally import label_hours_closed_through

    through = QualityTallied.objects.values_list("through", flat=True).first()
    untallied = Comparison.objects.exclude(completed_at__lt=through) if through else Comparison.objects.all()
    return {"live_hour_labels": PreferenceLabel.objects.filter(created_at__gte=label_hours_closed_through()).count(),
            "live_tally_labels": PreferenceLabel.objects.filter(comparison__in=untallied).count()}


def quality_tally_rebuild() -> float:
    """Rebuild the quality tallies from every completed comparison, as a close does after a reopen; return the seconds it took.

    Like the days, the fill's history lies where a studio would long have tallied it.
    """
    from feedback_app.models import AgreementTally, QualityTallied, RaterPairTally, RaterTally
    from feedback_app.services.quality_tally import quality_tally_close

    for model in (QualityTallied, RaterTally, AgreementTally, RaterPairTally):
        model.objects.all().delete()
    started = time.perf_counter()
    quality_tally_close()
    return time.perf_counter() - started


def open_comparisons(n: int) -> None:
    """Add ``n`` open comparisons (one label each) for the measuring rater."""
    from feedback_app.models import Comparison, Prompt, Response

    prompts = Prompt.objects.bulk_create([Prompt(text=f"Open request {i}: where is my refund?", source="bench:growth-open") for i in range(n)])
    replies = Response.objects.bulk_create([Response(prompt=p, text=f"Answer {k} for {p.pk}.") for p in prompts for k in (0, 1)])
    Comparison.objects.bulk_create([Comparison(prompt=p, response_a=replies[2 * i], response_b=replies[2 * i + 1]) for i, p in enumerate(prompts)])


def measure_labeling(token: str, *, rounds: int) -> dict:
    out = {}
    for name, combined in (("label_and_next", True), ("next_then_label", False)):
        open_comparisons(rounds + 25)
        rater = Rater(token, combined)
        for _ in range(10):
            rater.round()
        n, sql_ms = statements(rater.round)
        w, c = time.perf_counter(), time.process_time()
        for _ in range(rounds):
            rater.round()
        out[name] = {"wall_ms": round(1000 * (time.perf_counter() - w) / rounds, 2), "cpu_ms": round(1000 * (time.process_time() - c) / rounds, 2),
                     "statements": n, "sql_ms": sql_ms}
        # the rater's last lease is left open; the next flow starts from a fresh next
    return out


def measure_pages(client, api, *, repeat: int) -> dict:
    from feedback_app.api.stats import STATS

    def get(c, url):
        def call():
            response = c.get(url)
            assert response.status_code == 200, (url, response.status_code)
            b"".join(response.streaming_content) if response.streaming else response.content
        return call

    out = {url: timed(get(client, url), repeat) for url in PAGES}
    out.update({f"/api/v1/stats/{name}/": timed(get(api, f"/api/v1/stats/{name}/"), repeat) for name in STATS})
    return out


def measure_export(api) -> dict:
    w, c = time.perf_counter(), time.process_time()
    response = api.get("/api/v1/export/preferences/?format=raw")
    assert response.status_code == 200, response.status_code
    lines = sum(chunk.count(b"\n") for chunk in response.streaming_content)
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    return {"rows": lines, "wall_us_per_row": round(1e6 * wall / max(1, lines), 2), "cpu_us_per_row": round(1e6 * cpu / max(1, lines), 2),
            "wall_s": round(wall, 2)}


def measure_scoring(*, repeat: int) -> dict:
    """What the reward model's scoring reads to plan a chunk, after a new version went live over the whole history: a walk step
    (the next 256 labels and which of their comparisons the version has not scored) and a sweep step (the next 256 scored
    comparisons). The model's own work is the same per comparison at every size and is not run here (no model is loaded):
    the fill's comparisons are marked scored by an older version, as the studio's scoring would have left them."""
    from datetime import timedelta

    from django.utils import timezone

    from feedback_app.models import Comparison, PreferenceLabel, RewardModelVersion, RewardScoring
    from feedback_app.selectors.campaigns import campaign_default
    from feedback_app.services.scoring import _step_plan

    campaign = campaign_default()
    RewardModelVersion.objects.filter(name__startswith="growth-rm-").delete()  # the previous size's (SET_NULL on the scores)
    old = RewardModelVersion.objects.create(name="growth-rm-old", path="reward/growth-rm-old", status="retired", campaign=campaign)
    new = RewardModelVersion.objects.create(name="growth-rm-new", path="reward/growth-rm-new", status="retired", campaign=campaign)
    scored = Comparison.objects.filter(label_count__gt=0).update(rm_prob_a_wins=0.5, rm_prob_version=old)
    last = PreferenceLabel.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    RewardScoring.objects.update_or_create(campaign=campaign, defaults={"through_label_id": 0, "swept_through_id": 0, "sweep_credit": 0})
    mark = RewardScoring.objects.get(campaign=campaign)
    now = timezone.now() + timedelta(hours=1)  # every label past the walk's wait
    mark.through_label_id = max(0, last - 5000)  # the walk: near the newest labels
    walk = timed(lambda: _step_plan(version=new, mark=mark, n=256, now=now), repeat)
    mark.through_label_id, mark.sweep_credit = last, 10_000
    mark.swept_through_id = Comparison.objects.filter(rm_prob_a_wins__isnull=False).order_by("pk").values_list("pk", flat=True)[scored // 2]
    sweep = timed(lambda: _step_plan(version=new, mark=mark, n=256, now=now), repeat)
    step = _step_plan(version=new, mark=mark, n=256, now=now)
    assert step is not None and step.comparison_ids, "the sweep's step found no old score"
    return {"scored_comparisons": scored, "walk_step": walk, "sweep_step": sweep}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10000,100000", help="label counts to fill to, ascending, comma-separated")
    p.add_argument("--raters", type=int, default=2000)
    p.add_argument("--labels-per-day", type=int, default=33_000, help="the fill's steady rate: how far back in time the history reaches")
    p.add_argument("--open-share", type=float, default=1.0, help="the share of the fill's newest comparisons left open, part-labelled (a backlog)")
    p.add_argument("--max-open", type=int, default=2000,
                   help="the most comparisons left open: the supply keeps a bounded backlog (SUPPLY_OPEN_TARGET), so it does not grow with the history;"
                        " by default the newest 2,000 comparisons, the same backlog at every size")
    p.add_argument("--rounds", type=int, default=150, help="next + label rounds per flow and size")
    p.add_argument("--repeat", type=int, default=3, help="timed calls per page (the median is reported)")
    p.add_argument("--live-seconds", type=float, default=120.0,
                   help="the last seconds up to now filled at the fill's rate before the closes run: what they leave is the live window")
    p.add_argument("--no-export", action="store_true", help="skip the export (the slowest figure)")
    p.add_argument("--refit-only", action="store_true", help="measure a refit's data only (no requests, pages, scoring or export)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if sizes != sorted(sizes) or sizes[0] <= 0:
        p.error(f"--sizes must be positive and ascending, got {args.sizes}")
    with setup(os.environ.get("DATABASE_URL")):
        return run(args, sizes)


def run(args: argparse.Namespace, sizes: list[int]) -> int:
    from django.conf import settings
    from django.db import connection
    from django.test import Client

    from feedback_app.models import Campaign, Role
    from feedback_app.request_threads import collector_tuned
    from feedback_app.selectors.campaigns import campaign_default
    from feedback_app.services.accounts import api_token_issue, user_create

    Campaign.objects.filter(pk=campaign_default().pk).update(gold_rate=0.0)
    fill = Fill(raters=args.raters, labels_per_day=args.labels_per_day, open_share=args.open_share, max_open=args.max_open, seed=args.seed,
                live_seconds=args.live_seconds)
    from django.contrib.auth import get_user_model

    _, token = api_token_issue(user=get_user_model().objects.get(pk=fill.rater_ids[0]))
    researcher, _, researcher_token = user_create(username="growth-researcher", role=Role.RESEARCHER)
    pages = Client()
    pages.force_login(researcher)
    api = Client(HTTP_AUTHORIZATION=f"Token {researcher_token}")
    result = {"database": connection.vendor, "raters": args.raters,
              "labels_per_day": args.labels_per_day, "sizes": []}
    for size in sizes:
        fill_s = fill.grow_to(size)
        fill.live(args.live_seconds)
        tally_s = summaries_close()
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        collector_tuned(settings.WEB_GC_THRESHOLD)  # as the web process runs its requests (the fill's objects frozen)
        row = {"labels": fill.labels, **live_window(), "comparisons": fill.comparisons, "open_backlog": fill.open, "fill_s": round(fill_s, 1),
               "quality_tally_rebuild_s": round(tally_s, 1), "refit_data": measure_refit_data(repeat=args.repeat)}
        if not args.refit_only:
            row.update(labeling=measure_labeling(token, rounds=args.rounds), pages=measure_pages(pages, api, repeat=args.repeat),
                       scoring=measure_scoring(repeat=args.repeat))
        if not args.no_export and not args.refit_only:
            row["export"] = measure_export(api)
        result["sizes"].append(row)
        report(result)
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
    return 0


def report(result: dict) -> None:
    """Print the latest size's figures beside the first size's, with the ratio."""
    first, last = result["sizes"][0], result["sizes"][-1]

    def line(name: str, a: dict, b: dict, key: str, unit: str) -> None:
        ratio = b[key] / a[key] if a[key] else float("nan")
        flag = "  <-- more than 2x" if ratio > 2 else ""
        print(f"  {name:<52} {a[key]:>10.2f} {b[key]:>10.2f} {unit:<4} x{ratio:5.2f}   statements {a.get('statements', '-')} -> {b.get('statements', '-')}{flag}")

    print(f"\n{result['database']}: {last['labels']:,} labels over {last['comparisons']:,} comparisons; live: {last['live_hour_labels']:,} labels "
          f"not in their hours' counts, {last['live_tally_labels']:,} not in the quality tallies"
          f"\n  "
          f"(filled in {last['fill_s']} s; quality tallies rebuilt in {last['quality_tally_rebuild_s']} s); first size {first['labels']:,}")
    for name in last.get("labeling", ()):
        line(f"{name} (CPU)", first["labeling"][name], last["labeling"][name], "cpu_ms", "ms")
        line(f"{name} (wall)", first["labeling"][name], last["labeling"][name], "wall_ms", "ms")
    for url in last.get("pages", ()):
        line(url, first["pages"][url], last["pages"][url], "wall_ms", "ms")
    line("refit data (wall, a worker's later run: held + new)", first["refit_data"], last["refit_data"], "wall_s", "s")
    line("refit data (wall, a worker that starts: file + new)", first["refit_data"], last["refit_data"], "file_wall_s", "s")
    line("refit data (wall, first run: all)", first["refit_data"], last["refit_data"], "cold_wall_s", "s")
    line("refit data (CPU, a worker's later run)", first["refit_data"], last["refit_data"], "cpu_s", "s")
    line("the same, every label aggregated (before)", first["refit_data"], last["refit_data"], "every_label_cpu_s", "s")
    if "scoring" in last:
        line("scoring: plan a walk step (wall)", first["scoring"]["walk_step"], last["scoring"]["walk_step"], "wall_ms", "ms")
        line("scoring: plan a sweep step (wall)", first["scoring"]["sweep_step"], last["scoring"]["sweep_step"], "wall_ms", "ms")
    if "export" in last:
        line("export per row (wall)", first["export"], last["export"], "wall_us_per_row", "us")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
