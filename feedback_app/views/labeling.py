"""The rater's page: one comparison at a time.

With htmx, a submit, skip or undo answers with the ``workspace`` partial, which replaces the
current comparison in place; without JavaScript the same URLs take plain form posts and
redirect back to the page.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from feedback_app.models import Assignment, Campaign, CampaignMember, PreferenceLabel, Role
from feedback_app.selectors.labeling import (
    assignment_current_for_rater,
    assignment_held_by_rater,
    assignment_with_comparison,
    labels_today_count,
    rater_has_undoable_label,
)
from feedback_app.selectors.campaigns import campaigns_for_user, campaign_role, member_get, campaign_default
from feedback_app.selectors.training import policy_active
from feedback_app.services.labeling import LabelConflict, LabelingError, assignment_skip, label_record, label_undo_last
from feedback_app.services.leasing import assignment_lease_ahead, assignment_lease_next
from feedback_app.services.campaigns import guidelines_acknowledge
from feedback_app.views.access import campaign_required
from feedback_app.views.forms import LabelForm
from feedback_app.views.params import ParamError, ascii_int

TEMPLATE = "feedback_app/label.html"
LABELERS = (Role.RATER, Role.RESEARCHER, Role.ADMIN)


def _workspace(request: HttpRequest, *, assignment: Assignment | None, form: LabelForm | None = None, notice: str = "", status: int = 200) -> HttpResponse:
    """Render the page, or only its workspace partial for htmx; the comparison after this one rides along, ready."""
    context = _context(request, assignment=assignment, form=form, notice=notice)
    ahead = assignment_lease_ahead(rater=request.user, campaign=request.campaign, shown=assignment) if assignment else None
    if ahead is not None:  # label.js shows it the moment the rater submits, and sends the label behind it
        ahead_context = {**context, "form": LabelForm(campaign=request.campaign), "notice": "", **_sides(ahead)}  # the page's own figures, read once
        context["prefetched_html"] = render_to_string(f"{TEMPLATE}#workspace", ahead_context, request=request)
    if not request.htmx:  # the guidelines stay on the page while comparisons swap below them
        context.update(_guidelines(request))
    template = f"{TEMPLATE}#workspace" if request.htmx else TEMPLATE
    return render(request, template, context, status=status)


def _qualification(request: HttpRequest) -> dict | None:
    """The rater's qualification as the page tells it (None when none is asked of them or they were admitted)."""
    config = request.campaign
    member = member_get(user=request.user, campaign=config) if config.qualification_pairs else None
    status = member.qualification if member else ""
    if status not in (CampaignMember.Qualification.PENDING, CampaignMember.Qualification.FAILED):
        return None
    done = (PreferenceLabel.objects.filter(rater=request.user, comparison__is_gold=True, campaign=config).count()
            if status == CampaignMember.Qualification.PENDING else None)
    return {"status": status, "pairs": config.qualification_pairs, "done": done, "correct": member.qualification_correct,
            "of": member.qualification_n, "required": config.qualification_accuracy}


def _guidelines(request: HttpRequest) -> dict:
    """The guidelines as the page shows them: open while the rater has not confirmed reading this version."""
    config = request.campaign
    member = member_get(user=request.user, campaign=config) if config.guidelines else None
    seen = member.guidelines_seen if member else 0
    return {"guidelines": config.guidelines, "guidelines_version": config.guidelines_version,
            "guidelines_open": bool(config.guidelines) and seen < config.guidelines_version}


def _sides(assignment: Assignment | None) -> dict:
    """The comparison a page shows, with its replies on the sides the rater sees them."""
    if assignment is None:
        return {"assignment": None, "comparison": None}
    c = assignment.comparison
    left, right = (c.response_a, c.response_b) if assignment.a_on_left else (c.response_b, c.response_a)
    return {"assignment": assignment, "comparison": c, "left": left, "right": right}


def _context(request: HttpRequest, *, assignment: Assignment | None, form: LabelForm | None = None, notice: str = "") -> dict:
    now = timezone.now()
    campaign = request.campaign
    policy = policy_active(campaign_id=campaign.pk)
    context = {
        "form": form or LabelForm(campaign=campaign),
        "notice": notice,
        "campaign": campaign,
        "base": _base(campaign),
        "today_count": labels_today_count(rater=request.user, campaign_id=campaign.pk),
        "can_undo": rater_has_undoable_label(rater=request.user, campaign_id=campaign.pk, now=now, window_seconds=campaign.lease_time),
        "policy_name": policy.name if policy else None,
        "paused": campaign.state != Campaign.State.ACTIVE,
        "qualification": _qualification(request),
    }
    context.update(_sides(assignment))
    return context


def _held(request: HttpRequest) -> Assignment | None:
    """Return the lease named by ?c=<comparison id> if the rater holds it, else the next one; raise ParamError for a bad ?c."""
    now = timezone.now()
    wanted = request.GET.get("c", "")
    if wanted:
        held = assignment_held_by_rater(rater=request.user, comparison_id=ascii_int(wanted, name="c"), now=now)
        if held and held.comparison.prompt.campaign_id == request.campaign.pk:
            return held
    return assignment_lease_next(rater=request.user, campaign=request.campaign, now=now)


@require_GET
def label_entry(request: HttpRequest) -> HttpResponse:
    """/label/: the default campaign's label page for its members; anyone else picks one of their campaigns."""
    if (not request.user.is_authenticated or campaign_role(user=request.user, campaign=campaign_default()) is not None
            or not campaigns_for_user(user=request.user).exists()):
        return label_page(request)  # which refuses a user who has no role (403)
    return redirect("campaigns")


@require_GET
@campaign_required(*LABELERS)
def label_page(request: HttpRequest) -> HttpResponse:
    try:
        return _workspace(request, assignment=_held(request))
    except ParamError as exc:
        return HttpResponseBadRequest(f"{exc.name} {exc.message}.", content_type="text/plain; charset=utf-8")


@require_POST
@campaign_required(*LABELERS)
def label_submit(request: HttpRequest, comparison_id: int) -> HttpResponse:
    form = LabelForm(request.POST, campaign=request.campaign)
    if not form.is_valid():
        assignment = assignment_current_for_rater(rater=request.user, campaign_id=request.campaign.pk, now=timezone.now())
        if assignment is None or assignment.comparison_id != comparison_id:
            assignment = assignment_lease_next(rater=request.user, campaign=request.campaign)
        return _workspace(request, assignment=assignment, form=form, status=200 if request.htmx else 400)
    notice = ""
    try:
        label_record(rater=request.user, campaign=request.campaign, comparison_id=comparison_id, submission=form.submission())
    except LabelConflict:
        notice = "You had already labelled that comparison differently; your first answer stands."
    except LabelingError as exc:
        notice = f"That label was not saved: {exc}."
    return _next(request, notice=notice)


@require_POST
@campaign_required(*LABELERS)
def label_skip(request: HttpRequest, comparison_id: int) -> HttpResponse:
    notice = ""
    try:
        assignment_skip(rater=request.user, campaign=request.campaign, comparison_id=comparison_id)
    except LabelingError as exc:
        notice = f"Could not skip: {exc}."
    return _next(request, notice=notice)


@require_POST
@campaign_required(*LABELERS)
def label_undo(request: HttpRequest) -> HttpResponse:
    try:
        assignment = label_undo_last(rater=request.user, campaign=request.campaign)
    except LabelingError as exc:
        return _next(request, notice=f"Nothing undone: {exc}.")
    if request.htmx:
        assignment = assignment_with_comparison(assignment_id=assignment.pk)
        return _workspace(request, assignment=assignment, notice="Your last label was withdrawn; label it again.")
    messages.info(request, "Your last label was withdrawn; label it again.")
    return redirect(f"{request.path.rsplit('/undo/', 1)[0]}/?c={assignment.comparison_id}")


@require_POST
@campaign_required(*LABELERS)
def guidelines_seen(request: HttpRequest) -> HttpResponse:
    """The rater confirms reading the guidelines of the version the page showed; they are shown closed from then on."""
    try:
        version = ascii_int(request.POST.get("version", ""), name="version")
    except ParamError as exc:
        return HttpResponseBadRequest(f"{exc.name} {exc.message}.", content_type="text/plain; charset=utf-8")
    guidelines_acknowledge(campaign=request.campaign, user=request.user, version=version)
    if request.htmx:
        return HttpResponse(status=204)
    return redirect(_base(request.campaign) + "label/")


def _next(request: HttpRequest, *, notice: str) -> HttpResponse:
    if request.htmx:
        return _workspace(request, assignment=assignment_lease_next(rater=request.user, campaign=request.campaign), notice=notice)
    if notice:
        messages.warning(request, notice)
    return redirect(_base(request.campaign) + "label/")


def _base(campaign: Campaign) -> str:
    """The campaign's URL prefix: "/" for the default campaign, "/c/<slug>/" for the others."""
    return "/" if campaign.is_default else f"/c/{campaign.slug}/"


@require_GET
def campaigns_page(request: HttpRequest) -> HttpResponse:
    """The campaigns a user works in, to pick one; a rater with exactly one is sent straight to it."""
    if not request.user.is_authenticated:
        from django.contrib.auth.views import redirect_to_login

        return redirect_to_login(request.get_full_path())
    campaigns = [(c, _base(c), campaign_role(user=request.user, campaign=c)) for c in
                 campaigns_for_user(user=request.user).exclude(state=Campaign.State.ARCHIVED)]
    if len(campaigns) == 1 and campaigns[0][2] == Role.RATER:
        return redirect(campaigns[0][1] + "label/")
    return render(request, "feedback_app/campaigns.html", {"campaigns": campaigns})
