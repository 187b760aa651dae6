"""The researcher cockpit: overview, model versions (with sample replies), label quality, review queue, arena.

Pages are for researchers and admins; the actions that change data (promote, roll back,
adjudicate, mark gold, change settings) go through services, which write the audit entries.
"""

from __future__ import annotations

import json

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from feedback_app.models import Campaign, Comparison, PolicyVersion, RewardModelVersion, Role, TrainingRun, VersionStatus, Winner
from feedback_app.selectors.accounts import user_has_role
from feedback_app.selectors.dashboard import arena_standings, labels_over_time, reward_model_history
from feedback_app.selectors.judge_quality import ai_feedback_notice, judges_quality, reliability_charts
from feedback_app.selectors.quality import (
    agreement_summary,
    people_agreement,
    quality_tally,
    rater_quality,
)
from feedback_app.selectors.review import comparison_get, gold_candidates_count, labels_by_comparison, review_queue
from feedback_app.selectors.campaigns import campaign_get, campaign_role, campaigns_for_user
from feedback_app.services.campaigns import STRATEGIES, CampaignError, campaign_guidelines_set, campaign_settings_update
from feedback_app.selectors.training import policy_active, policy_names_with_weights, version_active, version_by_name
from feedback_app.selectors.training_runs import training_runs_recent
from feedback_app.services.generation import GenerationRefused, GenerationUnavailable, policy_replies_remote
from feedback_app.rendering import MAX_CHARS as GUIDELINES_MAX_CHARS
from feedback_app.services.quality import (
    QualityError,
    comparison_adjudicate,
    comparison_mark_gold,
    comparisons_promote_unanimous_to_gold,
)
from feedback_app.services.training_runs import training_run_get_or_request
from feedback_app.services.versions import VersionPruned, version_activation_action, version_make_active
from feedback_app import live
from feedback_app.views.access import campaign_required
from feedback_app.views.forms import PG_INTEGER_MAX, AsciiFloatField, AsciiIntegerField

STAFF = (Role.RESEARCHER, Role.ADMIN)
VERSION_MODELS = {"reward-models": RewardModelVersion, "policies": PolicyVersion}


class NamesField(forms.CharField):
    """Names (criteria, flags) as one comma-separated line; blank keeps the studio's defaults."""

    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, (list, tuple)) else value

    def to_python(self, value):
        text = super().to_python(value)
        return [name.strip() for name in text.split(",") if name.strip()] if text else []


class SettingsForm(forms.Form):
    gold_rate = AsciiFloatField(min_value=0, max_value=1, help_text="Share of each rater's comparisons that are gold pairs.")
    arena_share = AsciiFloatField(min_value=0, max_value=1, help_text="Share of new comparisons that pit the newest policy against an earlier one.")
    weight_by_trust = forms.BooleanField(required=False, help_text="Weight each label in training by its rater's trust.")
    min_trust = AsciiFloatField(min_value=0, max_value=1, help_text="Leave out the labels of raters whose trust is below this.")
    state = forms.ChoiceField(required=False, choices=Campaign.State.choices, help_text="Pause the campaign to stop new leases and generation.")
    qualification_pairs = AsciiIntegerField(required=False, min_value=0, max_value=1000,
                                            help_text="New raters first label this many gold pairs (0: no qualification).")
    qualification_accuracy = AsciiFloatField(required=False, min_value=0, max_value=1, help_text="The share of them a new rater must get right.")
    criteria = NamesField(required=False, max_length=400, help_text="Criteria raters may judge separately, comma-separated (blank: LABEL_CRITERIA).")
    flags = NamesField(required=False, max_length=400, help_text="Flags raters may raise, comma-separated (blank: LABEL_FLAGS).")
    label_target = AsciiIntegerField(required=False, min_value=0, max_value=PG_INTEGER_MAX, help_text="Labels to collect; the dashboard shows the progress (0: no target).")
    labels_per_comparison = AsciiIntegerField(required=False, min_value=1, max_value=100, help_text="Labels each new comparison needs (blank: LABELS_PER_COMPARISON).")
    lease_seconds = AsciiIntegerField(required=False, min_value=30, max_value=PG_INTEGER_MAX, help_text="How long a rater holds a comparison (blank: LEASE_SECONDS).")
    selection_strategy = forms.ChoiceField(required=False, choices=[("", "the studio's (SELECTION_STRATEGY)"), *((n, n) for n in STRATEGIES)],
                                           help_text="How the campaign's new policy versions pick the pair to show.")
    refit_every_n_labels = AsciiIntegerField(required=False, min_value=0, max_value=PG_INTEGER_MAX,
                                             help_text="A fast reward refit after this many new labels (0: none by itself; blank: REFIT_EVERY_N_LABELS).")
    policy_every_n_labels = AsciiIntegerField(required=False, min_value=0, max_value=PG_INTEGER_MAX,
                                              help_text="A policy update after this many new labels (0: none by itself; blank: POLICY_EVERY_N_LABELS).")
    ai_feedback = forms.BooleanField(required=False, help_text="With AI feedback on in the studio, its routing judge labels what it is sure of here.")
    ai_audit_share = AsciiFloatField(required=False, min_value=0, max_value=1, help_text="Share of AI-labelled comparisons also sent to people (blank: AI_AUDIT_SHARE).")


class AdjudicationForm(forms.Form):
    winner = forms.ChoiceField(choices=[("", "no verdict"), *Winner.choices], required=False)
    exclude = forms.BooleanField(required=False, help_text="Leave this comparison out of training.")
    note = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


SAMPLE_REPLIES = 3  # replies per sample request: enough to see how a version's answers vary


class SamplesForm(forms.Form):
    prompt = forms.CharField(max_length=20000, widget=forms.Textarea(attrs={"rows": 2}), help_text="A customer message to answer.")
    version = forms.ChoiceField(choices=(), help_text="The policy version that answers.")
    seed = AsciiIntegerField(required=False, min_value=0, max_value=PG_INTEGER_MAX, help_text="The same seed gives the same replies (default 0).")
    mode = forms.ChoiceField(required=False, choices=(("", "as served"), ("sample", "sample"), ("rerank", "rerank")),
                             help_text="As the version is served, one sampled reply, or the best of several by the active reward model.")

    def __init__(self, *args, versions: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["version"].choices = [(name, name) for name in versions]


def _comparison_or_404(request: HttpRequest, comparison_id: int) -> Comparison:
    comparison = comparison_get(comparison_id=comparison_id, campaign_id=request.campaign.pk)  # another campaign's is as good as missing
    if comparison is None:
        raise Http404("No Comparison matches the given query.")
    return comparison


def _is_admin(request: HttpRequest) -> bool:
    return user_has_role(user=request.user, roles=(Role.ADMIN,))


@require_GET
@campaign_required(*STAFF)
def overview(request: HttpRequest) -> HttpResponse:
    campaign = request.campaign
    charts = {"labels_over_time": labels_over_time(campaign_id=campaign.pk), **live.dashboard_charts(campaign_id=campaign.pk)}
    context = {"counters_html": live.dashboard_counters_html(campaign_id=campaign.pk), "run_html": live.training_run_html(campaign_id=campaign.pk),
               "health_html": live.health_html(), "charts": charts, "section": "overview",
               "ai_notice": ai_feedback_notice(campaign_id=campaign.pk),
               **_scope(request, campaign)}
    return render(request, "feedback_app/dashboard/overview.html", context)


def _base(campaign: Campaign) -> str:
    return "/" if campaign.is_default else f"/c/{campaign.slug}/"


def _scope(request: HttpRequest, campaign: Campaign) -> dict:
    """What a campaign's dashboard pages need: its URL prefix and the other campaigns whose dashboards the viewer may open (the switcher)."""
    others = [(c, _base(c)) for c in campaigns_for_user(user=request.user).exclude(pk=campaign.pk)
              if campaign_role(user=request.user, campaign=c) in STAFF]
    return {"campaign": campaign, "base": _base(campaign), "other_campaigns": others}


def _to(request: HttpRequest, page: str) -> HttpResponse:
    """Redirect to one of the campaign's dashboard pages ("quality/", "review/")."""
    return redirect(_base(request.campaign) + "dashboard/" + page)


def _models_context(request: HttpRequest, **extra) -> dict:
    campaign = request.campaign
    return {
        "reward_models": reward_model_history(campaign_id=campaign.pk)[::-1],
        "policies": arena_standings(campaign_id=campaign.pk, samples=100)["versions"][::-1],
        "runs": training_runs_recent(limit=15, campaign_id=campaign.pk),
        "section": "models",
        "sample_count": SAMPLE_REPLIES,
        **_scope(request, campaign),
        **extra,
    }


@require_GET
@campaign_required(*STAFF)
def models(request: HttpRequest) -> HttpResponse:
    active = policy_active(campaign_id=request.campaign.pk)
    form = SamplesForm(versions=policy_names_with_weights(campaign_id=request.campaign.pk), initial={"version": active.name if active else None})
    return render(request, "feedback_app/dashboard/models.html", _models_context(request, samples_form=form))


@require_POST
@campaign_required(*STAFF)
def policy_samples(request: HttpRequest) -> HttpResponse:
    """Sample replies of one policy version to a prompt: the samples panel for htmx, else the whole versions page."""
    form = SamplesForm(request.POST, versions=policy_names_with_weights(campaign_id=request.campaign.pk))
    samples, problem, status = None, "", 200
    if not form.is_valid():
        status = 400
    else:
        data = form.cleaned_data
        try:
            samples = policy_replies_remote(policy_name=data["version"], prompts=[{"prompt": data["prompt"]}] * SAMPLE_REPLIES,
                                            mode=data["mode"] or None, seed=data["seed"], timeout=settings.GENERATE_TIMEOUT_SECONDS)
        except GenerationRefused as exc:
            problem, status = str(exc), 409
        except GenerationUnavailable as exc:
            problem, status = f"No sample replies: {exc}. Is a worker on the 'score' queue running?", 503
    context = {"samples_form": form, "samples": samples, "samples_problem": problem, "sample_count": SAMPLE_REPLIES}
    if request.htmx:  # htmx swaps only 2xx answers in
        return render(request, "feedback_app/dashboard/models.html#samples", context)
    return render(request, "feedback_app/dashboard/models.html", _models_context(request, **context), status=status)


@require_POST
@campaign_required(*STAFF)
def run_request(request: HttpRequest) -> HttpResponse:
    kind = request.POST.get("kind", "")
    if kind not in TrainingRun.Kind.values:
        messages.error(request, f"Unknown kind of training run: {kind!r}.")
        return _to(request, "models/")
    run, created = training_run_get_or_request(kind=kind, trigger=TrainingRun.Trigger.MANUAL, user=request.user, campaign_id=request.campaign.pk)
    messages.success(request, f"{'Queued' if created else 'Already queued:'} training run {run.pk} ({run.get_kind_display()}).")
    return _to(request, "models/")


@require_http_methods(["GET", "POST"])
@campaign_required(*STAFF)
def version_activate_view(request: HttpRequest, kind: str, name: str) -> HttpResponse:
    """GET: the confirmation page (the fallback without JavaScript); POST: promote or roll back."""
    model = VERSION_MODELS.get(kind)
    if model is None:
        raise Http404(f"no kind of version {kind!r}")
    version = version_by_name(model=model, name=name)
    if version is None or version.campaign_id != request.campaign.pk:  # another campaign's line is as good as missing
        raise Http404(f"no {kind} version named {name!r}")
    if request.method == "GET":
        context = {"version": version, "active": version_active(model=model, campaign_id=request.campaign.pk),
                   "action": version_activation_action(version=version), "kind": kind, **_scope(request, request.campaign)}
        return render(request, "feedback_app/dashboard/confirm.html", context)
    if version.status == VersionStatus.ACTIVE:
        messages.info(request, f"{version.name} is active already.")
    else:
        try:
            action = version_make_active(version=version, user=request.user, reason="dashboard")
            messages.success(request, f"{version.name} is now active ({action}).")
        except VersionPruned as exc:
            messages.error(request, str(exc))
    return _to(request, "models/")


RATERS_SHOWN = 100  # rows of the quality page's rater table, unless all are asked for


@require_http_methods(["GET", "POST"])
@campaign_required(*STAFF)
def quality(request: HttpRequest) -> HttpResponse:
    config = campaign_get(campaign_id=request.campaign.pk)  # read afresh: the form edits it
    form = SettingsForm(request.POST or None, initial={f: getattr(config, f) for f in SettingsForm.base_fields})
    if request.method == "POST" and form.is_valid():
        try:
            campaign_settings_update(campaign=config, user=request.user, **{k: v for k, v in form.cleaned_data.items() if v not in (None, "")})
        except CampaignError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "Settings saved; they apply to the next leases and training runs.")
            return _to(request, "quality/")
    tally = quality_tally(campaign_id=config.pk)
    raters = sorted(rater_quality(campaign_id=config.pk, tally=tally).values(), key=lambda r: (not r["warnings"], -r["n_labels"]))
    n_raters = len(raters)
    if request.GET.get("raters") != "all":
        raters = raters[:RATERS_SHOWN]  # those with warnings first, then the busiest; every rater is in stats/raters and on ?raters=all
    judges = judges_quality(campaign_id=config.pk, people=people_agreement(campaign_id=config.pk, tally=tally))
    context = {"agreement": agreement_summary(campaign_id=config.pk, tally=tally), "raters": raters, "n_raters": n_raters, "form": form, "settings": config,
               "gold_candidates": gold_candidates_count(campaign_id=config.pk), "is_admin": _is_admin(request), "section": "quality",
               "judges": judges, "reliability_charts": reliability_charts(judges), "ai_notice": ai_feedback_notice(campaign_id=config.pk),
               "guidelines_form": GuidelinesForm(initial={"guidelines": config.guidelines}), **_scope(request, config)}
    refused = request.method == "POST" and not request.htmx  # htmx swaps only 2xx answers in
    return render(request, "feedback_app/dashboard/quality.html", context, status=400 if refused else 200)


class GuidelinesForm(forms.Form):
    guidelines = forms.CharField(required=False, max_length=GUIDELINES_MAX_CHARS, widget=forms.Textarea(attrs={"rows": 10}),
                                 help_text="Markdown. Raters see changed guidelines open on their next visit; each label records the version.")


@require_POST
@campaign_required(*STAFF)
def guidelines_update(request: HttpRequest) -> HttpResponse:
    form = GuidelinesForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Guidelines not saved: " + "; ".join(e for errors in form.errors.values() for e in errors))
        return _to(request, "quality/")
    try:
        before = campaign_get(campaign_id=request.campaign.pk).guidelines_version
        version = campaign_guidelines_set(campaign=request.campaign, user=request.user, text=form.cleaned_data["guidelines"]).guidelines_version
    except CampaignError as exc:
        messages.error(request, f"Guidelines not saved: {exc}.")
        return _to(request, "quality/")
    messages.success(request, f"Guidelines saved as version {version}." if version != before else "The guidelines were unchanged.")
    return _to(request, "quality/")


@require_POST
@campaign_required(Role.ADMIN)
def gold_promote(request: HttpRequest) -> HttpResponse:
    n = comparisons_promote_unanimous_to_gold(user=request.user, campaign_id=request.campaign.pk)
    messages.success(request, f"{n} comparison(s) where every rater agreed are now gold pairs.")
    return _to(request, "quality/")


@require_POST
@campaign_required(Role.ADMIN)
def gold_mark(request: HttpRequest, comparison_id: int) -> HttpResponse:
    comparison = _comparison_or_404(request, comparison_id)
    try:
        comparison_mark_gold(comparison=comparison, winner=request.POST.get("winner", ""), user=request.user)
    except QualityError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Comparison {comparison.pk} is a gold pair.")
    return _to(request, "review/")


@require_GET
@campaign_required(*STAFF)
def review(request: HttpRequest) -> HttpResponse:
    queue = review_queue(campaign_id=request.campaign.pk)
    ids = [c.pk for c in queue["flagged"] + queue["disputed"]]
    context = {"queue": queue, "labels": labels_by_comparison(comparison_ids=ids), "form": AdjudicationForm(), "is_admin": _is_admin(request),
               "section": "review", **_scope(request, request.campaign)}
    return render(request, "feedback_app/dashboard/review.html", context)


@require_POST
@campaign_required(Role.ADMIN)
def adjudicate(request: HttpRequest, comparison_id: int) -> HttpResponse:
    comparison = _comparison_or_404(request, comparison_id)
    form = AdjudicationForm(request.POST)
    if not form.is_valid():
        problems = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
        return HttpResponseBadRequest(f"Invalid adjudication ({problems}).", content_type="text/plain; charset=utf-8")
    try:
        comparison_adjudicate(comparison=comparison, user=request.user, **form.cleaned_data)
    except QualityError as exc:
        messages.error(request, f"Comparison {comparison.pk}: {exc}.")
    else:
        messages.success(request, f"Comparison {comparison.pk} reviewed.")
    return _to(request, "review/")


@require_GET
@campaign_required(*STAFF)
def arena(request: HttpRequest) -> HttpResponse:
    standings = arena_standings(campaign_id=request.campaign.pk)
    return render(request, "feedback_app/dashboard/arena.html", {"standings": standings, "chart": json.dumps(standings["versions"]), "section": "arena",
                                                                 **_scope(request, request.campaign)})
