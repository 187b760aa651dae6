"""Shoot the pictures in docs/: the dashboard, the labeling page (with a policy swap's toast), quality, arena.

Run from the project root (needs Debian's /usr/bin/chromium, as the browser tests do):

    .venv/bin/python docs/make_screenshots.py [--out docs] [--width 1400]

It fills a scratch studio (SQLite in a temporary VAR_DIR, its own Redis, one daphne on
127.0.0.1) and stops everything it started at the end. Users, prompts, leases and labels go
through the services, as on a live site: five raters with three labels per comparison, so
they overlap; one of them clicks the left side, fast. Two kinds of rows are SAMPLE DATA,
written straight to the database with made-up figures, because producing them for real
takes models and minutes: the reward-model and policy versions with their metrics, the
training runs, the reward model's P(A beats B) on comparisons, and the responses "generated"
by policies for arena pairs. Label timestamps are spread over the last four days afterwards,
so the plots have a history. Nothing here is a measurement.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "a long demo password"
SAMPLE = "sample data written by docs/make_screenshots.py; not a measurement"

TOPICS = [
    ("refund", "my refund for order {n}", "Your refund for order {n} was approved today; it reaches your card in 3–5 business days. I've emailed you the confirmation."),
    ("delivery", "where parcel {n} is", "Parcel {n} left our warehouse yesterday and is due on Thursday. Here is the tracking link; I'll watch it and write if anything changes."),
    ("account", "resetting my password", "I've sent a reset link to the address on your account; it works for 30 minutes. If it doesn't arrive, check spam, or reply and I'll verify you another way."),
    ("billing", "a double charge on invoice {n}", "You're right: invoice {n} was charged twice. I've reversed the duplicate; your bank shows it within 2 days. Sorry for the worry."),
    ("cancel", "cancelling subscription {n}", "Subscription {n} is cancelled and you won't be charged again. You keep access until the end of this month. Anything I can help with before then?"),
    ("damaged", "a kettle that arrived broken (order {n})", "I'm sorry it arrived damaged. A replacement ships today, free, and a prepaid return label is in your inbox; no need to send the broken one first."),
    ("address", "changing the address on order {n}", "Done: order {n} now goes to the new address. It hadn't shipped yet, so the delivery date stays the same."),
    ("loyalty", "missing loyalty points for order {n}", "The points for order {n} were held back by a sync error. I've added all 340 now, and they're valid for 12 months."),
]
ASKS = ["Hi, I need help with {what}.", "Can someone tell me about {what}? I've been waiting a week.", "Question about {what}, please.",
        "I wrote twice already about {what} and nobody answered.", "Hello! Quick one about {what}."]
POOR = ["Please check the FAQ on our website.", "We have received your message and will reply within 10 business days.",
        "That's not something we can help with here.", "Thank you for contacting us. Your request has been noted.",
        "Thank you for contacting Customer Care. We appreciate your patience while our team reviews your request. Please note that "
        "response times may vary during busy periods and that our standard terms and conditions apply to all orders, returns and "
        "refunds. For more information, please visit the Help Centre on our website, where you will find answers to frequently asked "
        "questions about orders, deliveries, payments and your account.",
        "I understand your frustration. Unfortunately I am not able to look into individual orders from this channel. You may want to "
        "contact your bank or card provider, who can tell you more about any transactions on your statement. Alternatively, fill in "
        "the contact form on our website and a member of the relevant team will get back to you as soon as possible."]
RATERS = {"kim": 0.93, "lee": 0.9, "sam": 0.88, "noor": 0.85, "max": None}  # chance of picking the better reply; max clicks left

SHOWCASE = {
    "context": [
        {"role": "user", "content": "Hi, I ordered a kettle two weeks ago (order 48213) and it still hasn't arrived."},
        {"role": "assistant", "content": "Sorry to hear that! I can see it was shipped on the 3rd with ParcelCo."},
    ],
    "prompt": "The tracking link has said \"in transit\" for nine days now. Can I just get a refund?",
    "responses": [
        "I'm sorry — nine days without a tracking update is too long, and you shouldn't have to keep waiting.\n\n"
        "I've opened a trace with ParcelCo, and you can choose what happens next:\n"
        "1. A full refund to your original payment method, today (it shows in 3–5 business days), or\n"
        "2. A replacement kettle sent by express, free, arriving in 1–2 days.\n\n"
        "If the first parcel turns up later, just refuse it or send it back with the prepaid label I'll email you.",
        "Parcels can sometimes take up to 21 days to arrive. Please wait until then and contact us again if it has still not arrived.",
    ],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="Keep the scratch folder (daphne.log, the database).")
    args = parser.parse_args()
    if not os.path.exists(CHROMIUM):
        raise SystemExit(f"{CHROMIUM} is missing (apt-get install chromium)")

    sys.path.insert(0, str(ROOT))
    from bench.scratch import ScratchStudio

    with ScratchStudio("screenshots-", env={"LABELS_PER_COMPARISON": "3", "REFIT_EVERY_N_LABELS": "0"}, keep=args.keep) as studio:
        random.seed(args.seed)
        populate(random.Random(args.seed))
        shoot(studio.start_web(), args.out, args.width)
    return 0


def populate(rng: random.Random) -> None:
    """Fill the studio: users, prompts, labels through the services; versions and runs as sample rows."""
    from django.utils import timezone

    from feedback_app.models import Assignment, Comparison, PreferenceLabel, Role
    from feedback_app.services.accounts import user_create
    from feedback_app.selectors.campaigns import campaign_default
    from feedback_app.services.campaigns import campaign_settings_update
    from feedback_app.services.quality import comparisons_promote_unanimous_to_gold

    admin, _, _ = user_create(username="ada", role=Role.ADMIN, password=PASSWORD)
    user_create(username="rhea", role=Role.RESEARCHER, password=PASSWORD)
    raters = {name: user_create(username=name, role=Role.RATER, password=PASSWORD)[0] for name in RATERS}

    rms, policies = sample_versions(rng)
    better = import_prompts(rng, count=60, batch="week-1")
    label_all(rng, raters, better, flag_some=True)
    comparisons_promote_unanimous_to_gold(user=admin, limit=12)
    campaign_settings_update(campaign=campaign_default(), user=admin, gold_rate=0.25)
    better.update(import_prompts(rng, count=36, batch="week-2"))
    better.update(sample_arena(rng, policies, count=24))
    label_all(rng, raters, better, flag_some=False)
    campaign_settings_update(campaign=campaign_default(), user=admin, gold_rate=0.05)
    sample_reward_scores(rng, better, rms[-1])

    # SAMPLE: spread the labels over the last four days (oldest first), the last few minutes busy.
    now = timezone.now()
    labels = list(PreferenceLabel.objects.filter(rater__isnull=False).order_by("id").values_list("id", flat=True))
    recent = 14
    for i, label_id in enumerate(labels):
        if i >= len(labels) - recent:
            at = now - timedelta(seconds=(len(labels) - i) * 25)
        else:
            at = now - timedelta(days=4) + (now - timedelta(minutes=10) - (now - timedelta(days=4))) * (i / (len(labels) - recent))
            at += timedelta(minutes=rng.uniform(-20, 20))
        PreferenceLabel.objects.filter(pk=label_id).update(created_at=at)
        Assignment.objects.filter(label__pk=label_id).update(leased_at=at - timedelta(seconds=30), finished_at=at)
    for comparison in Comparison.objects.filter(status=Comparison.Status.COMPLETE):
        last = comparison.labels.order_by("-created_at").values_list("created_at", flat=True).first()
        if last:
            Comparison.objects.filter(pk=comparison.pk).update(completed_at=last)

    # Open work for the dashboard's counter, and the pair the labeling picture shows first.
    showcase_and_queue(rng, raters["kim"])
    sample_runs(rms, policies)


def import_prompts(rng: random.Random, *, count: int, batch: str) -> dict[int, str]:
    """Import prompts with a good and a poor reply; return {comparison id: the better response's side}."""
    from feedback_app.models import Comparison
    from feedback_app.services.import_parsing import PromptRecord
    from feedback_app.services.imports import prompt_records_import

    records, good_texts = [], set()
    for i in range(count):
        tag, what, good = TOPICS[i % len(TOPICS)]
        n = 40000 + rng.randrange(10000)
        good = good.format(n=n)
        good_texts.add(good)
        replies = [good, rng.choice(POOR)]
        rng.shuffle(replies)  # the first reply listed becomes A
        records.append(PromptRecord(line=i + 1, prompt=rng.choice(ASKS).format(what=what.format(n=n)), responses=replies, tags=[tag]))
    made = prompt_records_import(records=records, filename=f"{batch}.jsonl", sha256=f"screenshots-{batch}", source="import:demo")
    return {c.pk: ("a" if c.response_a.text in good_texts else "b")
            for c in Comparison.objects.filter(import_batch=made).select_related("response_a")}


def label_all(rng: random.Random, raters: dict, better: dict[int, str], *, flag_some: bool) -> None:
    """Let every rater label until nothing is left for them, each in their own manner."""
    from feedback_app.selectors.campaigns import campaign_default
    from feedback_app.services.labeling import LabelSubmission, label_record
    from feedback_app.services.leasing import assignment_lease_next

    busy = list(raters.items())
    flagged = 0
    while busy:
        rng.shuffle(busy)
        for name, user in list(busy):
            if RATERS[name] is None and rng.random() < 0.5:  # the careless rater works half as much
                continue
            assignment = assignment_lease_next(campaign=campaign_default(), rater=user)
            if assignment is None:
                busy.remove((name, user))
                continue
            skill = RATERS[name]
            if skill is None:  # always the left reply, in under two seconds
                submission = LabelSubmission(choice="left", strength=3, time_on_task_ms=rng.randint(900, 2200))
            else:
                best = better.get(assignment.comparison_id) or assignment.comparison.gold_winner or rng.choice("ab")
                roll = rng.random()
                if roll < 0.06:
                    choice = "tie"
                else:
                    winner = best if roll < skill else ("b" if best == "a" else "a")
                    choice = "left" if (winner == "a") == assignment.a_on_left else "right"
                flags = ("private",) if flag_some and name == "noor" and flagged < 2 and rng.random() < 0.2 else ()
                flagged += bool(flags)
                submission = LabelSubmission(
                    choice=choice, strength=rng.choice((1, 2, 2, 3)), flags=flags, time_on_task_ms=int(rng.lognormvariate(9.4, 0.5)),
                    rationale="The reply repeats the customer's card number." if flags else "",
                )
            label_record(campaign=campaign_default(), rater=user, comparison_id=assignment.comparison_id, submission=submission)


def sample_versions(rng: random.Random):
    """SAMPLE: write reward-model and policy versions with made-up but plausible metrics."""
    from django.utils import timezone

    from feedback_app.models import PolicyVersion, RewardModelVersion, VersionStatus

    now = timezone.now()
    rms, active = [], None
    figures = [(0.612, 0.664, 0.081, None), (0.648, 0.641, 0.066, 0.611), (0.659, 0.633, 0.058, 0.646), (0.641, 0.650, 0.071, 0.660),
               (0.687, 0.612, 0.049, 0.657), (0.703, 0.598, 0.041, 0.688)]
    for i, (acc, loss, ece, baseline) in enumerate(figures):
        promoted = baseline is None or acc >= baseline - 0.01
        bins = [{"p_mean": p, "accuracy": min(0.97, p - 0.05 + 0.02 * i + rng.uniform(-0.03, 0.03)), "count": c}
                for p, c in ((0.55, 64), (0.65, 51), (0.75, 38), (0.85, 22), (0.94, 11))]
        rm = RewardModelVersion.objects.create(
            name=f"rm-{3 + 4 * i:05d}", path=f"reward/sample-{i}", parent=active,
            tier="full" if i == 4 else "fast", backbone="sentence-transformers/all-MiniLM-L6-v2",
            status=VersionStatus.CANDIDATE if not promoted else VersionStatus.RETIRED,
            metrics={"val_accuracy": acc, "val_loss": loss, "val_ece": ece, "calibration": bins, "n_train": 180 + 60 * i, "n_validation": 40 + 10 * i,
                     "baseline": {"val_accuracy": baseline} if baseline else {}, "promoted": promoted,
                     "gate": "promoted: not worse than the active model" if promoted else "kept as a candidate: 1.9 points below the active model",
                     "sample": SAMPLE},
            data_range={"first_label_id": 1, "last_label_id": 40 * (i + 1), "n_pairs": 220 + 70 * i},
        )
        RewardModelVersion.objects.filter(pk=rm.pk).update(created_at=now - timedelta(hours=90 - 16 * i))
        rms.append(rm)
        active = rm if promoted else active
    RewardModelVersion.objects.filter(pk=rms[-1].pk).update(status=VersionStatus.ACTIVE, activated_at=now - timedelta(hours=10))
    rms[-1].refresh_from_db()
    base = PolicyVersion.objects.create(name="policy-base", path="policy/policy-base", generator="SmolLM2-135M-Instruct (GGUF)",
                                        status=VersionStatus.RETIRED, metrics={"sample": SAMPLE})
    first = PolicyVersion.objects.create(name="policy-00011", path="policy/policy-00011", parent=base, reward_model=rms[2],
                                         status=VersionStatus.RETIRED, metrics={"win_rate_vs_parent": 0.594, "sample": SAMPLE})
    second = PolicyVersion.objects.create(name="policy-00019", path="policy/policy-00019", parent=first, reward_model=rms[4],
                                          status=VersionStatus.ACTIVE, activated_at=now - timedelta(hours=6),
                                          metrics={"win_rate_vs_parent": 0.562, "sample": SAMPLE})
    return rms, [base, first, second]


def sample_arena(rng: random.Random, policies, *, count: int) -> dict[int, str]:
    """SAMPLE: arena pairs whose replies stand for two policies' generations (the newer one is better more often)."""
    from feedback_app.models import Comparison, Prompt, Response

    better = {}
    pairings = [(policies[1], policies[0], 0.7), (policies[2], policies[1], 0.64)]
    for i in range(count):
        new, old, p_new = pairings[i % 2]
        tag, what, good = TOPICS[i % len(TOPICS)]
        n = 50000 + rng.randrange(10000)
        prompt = Prompt.objects.create(text=rng.choice(ASKS).format(what=what.format(n=n)), source="generated")
        new_wins = rng.random() < p_new
        texts = (good.format(n=n), rng.choice(POOR)) if new_wins else (rng.choice(POOR), good.format(n=n))
        a = Response.objects.create(prompt=prompt, text=texts[0], policy_version=new)
        b = Response.objects.create(prompt=prompt, text=texts[1], policy_version=old)
        if rng.random() < 0.5:
            a, b = b, a
        c = Comparison.objects.create(prompt=prompt, response_a=a, response_b=b, required_labels=3, kind=Comparison.Kind.ARENA, policy_version=new)
        better[c.pk] = "a" if (a.policy_version == new) == new_wins else "b"
    return better


def sample_reward_scores(rng: random.Random, better: dict[int, str], rm) -> None:
    """SAMPLE: the reward model's P(A beats B), right about three times in four."""
    from feedback_app.models import Comparison

    for cid, side in better.items():
        confident = rng.uniform(0.6, 0.95)
        right = rng.random() < 0.76
        p_a = confident if (side == "a") == right else 1 - confident
        Comparison.objects.filter(pk=cid).update(rm_prob_a_wins=round(p_a, 3), rm_prob_version=rm)


def showcase_and_queue(rng: random.Random, kim) -> None:
    """Import the pair the labeling picture shows, then a queue of open ones; lease the showcase to kim."""
    from feedback_app.services.import_parsing import PromptRecord
    from feedback_app.services.imports import prompt_records_import
    from feedback_app.selectors.campaigns import campaign_default
    from feedback_app.services.labeling import assignment_skip
    from feedback_app.services.leasing import assignment_lease_next

    prompt_records_import(records=[PromptRecord(line=1, prompt=SHOWCASE["prompt"], context=SHOWCASE["context"], responses=SHOWCASE["responses"])],
                          filename="showcase.jsonl", sha256="screenshots-showcase", source="import:demo", required_labels=3)
    import_prompts(rng, count=23, batch="queue")
    while True:  # gold pairs come first now and then; skip them
        assignment = assignment_lease_next(campaign=campaign_default(), rater=kim)
        if assignment.comparison.prompt.text == SHOWCASE["prompt"]:
            break
        assignment_skip(campaign=campaign_default(), rater=kim, comparison_id=assignment.comparison_id)


def sample_runs(rms, policies) -> None:
    """SAMPLE: the training runs that would have produced the versions, and one running now."""
    from django.utils import timezone

    from feedback_app.models import TrainingRun

    now = timezone.now()
    for rm in rms:
        run = TrainingRun.objects.create(kind=TrainingRun.Kind.REWARD_FULL if rm.tier == "full" else TrainingRun.Kind.REWARD_FAST,
                                         trigger=TrainingRun.Trigger.AUTO, status=TrainingRun.Status.SUCCEEDED, reward_model_version=rm,
                                         metrics=rm.metrics, started_at=rm.created_at - timedelta(minutes=2), finished_at=rm.created_at)
        TrainingRun.objects.filter(pk=run.pk).update(created_at=rm.created_at - timedelta(minutes=3))
    for policy in policies[1:]:
        run = TrainingRun.objects.create(kind=TrainingRun.Kind.POLICY_DPO, trigger=TrainingRun.Trigger.MANUAL, status=TrainingRun.Status.SUCCEEDED,
                                         policy_version=policy, metrics=policy.metrics, finished_at=now - timedelta(hours=6))
        TrainingRun.objects.filter(pk=run.pk).update(created_at=now - timedelta(hours=7))
    TrainingRun.objects.create(kind=TrainingRun.Kind.REWARD_FAST, trigger=TrainingRun.Trigger.AUTO, status=TrainingRun.Status.RUNNING,
                               started_at=now - timedelta(seconds=40), heartbeat_at=now, worker="gpu@studio",
                               progress={"phase": "training heads", "step": 140, "total_steps": 200, "loss": 0.583, "accuracy": 0.684,
                                         "sample": SAMPLE})


def activate_policy(name: str) -> None:
    """Create and activate a policy from a thread of its own (Playwright runs an event loop in this one)."""
    from django.db import connection, transaction

    from feedback_app.models import PolicyVersion, VersionStatus
    from feedback_app.services.versions import version_activate

    def work() -> None:
        try:
            active = PolicyVersion.objects.get(status=VersionStatus.ACTIVE)
            with transaction.atomic():
                version = PolicyVersion.objects.create(name=name, path=f"policy/{name}", parent=active, metrics={"sample": SAMPLE})
                version_activate(version=version, user=None, action="promote", reason="docs/make_screenshots.py")
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(work).result(timeout=30)


def shoot(server: str, out: Path, width: int) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # ORM calls between browser steps, in Playwright's thread
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

        def logged_in(username: str, path: str):
            page = browser.new_context(viewport={"width": width, "height": 960}).new_page()
            page.goto(f"{server}{path}")
            page.fill("#id_username", username)
            page.fill("#id_password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_load_state("networkidle")
            return page

        researcher = logged_in("rhea", "/dashboard/")
        researcher.wait_for_selector("#live-status[data-state=open]")
        researcher.screenshot(path=str(out / "dashboard.png"), full_page=True)
        for section in ("quality", "arena"):
            researcher.goto(f"{server}/dashboard/{section}/")
            researcher.wait_for_load_state("networkidle")
            researcher.screenshot(path=str(out / f"{section}.png"), full_page=True)

        rater = logged_in("kim", "/label/")
        rater.wait_for_function("() => document.querySelector('#label-form')")
        better_on_left = rater.inner_text("[data-testid=left-text]").startswith("I'm sorry")
        rater.keyboard.press("1" if better_on_left else "2")
        rater.keyboard.press("w")
        rater.wait_for_timeout(1000)  # the websocket's state on connect
        activate_policy("policy-00027")
        rater.locator("[data-testid=policy-toast]").wait_for(state="visible", timeout=10_000)
        rater.wait_for_timeout(400)  # the toast's entrance
        rater.screenshot(path=str(out / "labeling.png"))
        browser.close()
    for name in ("dashboard", "labeling", "quality", "arena"):
        print(out / f"{name}.png")


if __name__ == "__main__":
    sys.exit(main())
