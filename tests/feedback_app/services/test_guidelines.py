"""The rater guidelines: Markdown rendered safely, a version raised by each change, recorded on every label, shown open when new."""

import pytest

from feedback_app.models import DEFAULT_CAMPAIGN_ID, AuditEntry, CampaignMember, PreferenceLabel
from feedback_app.rendering import markdown_html
from feedback_app.services.labeling import LabelSubmission, label_record
from feedback_app.services.leasing import assignment_lease_next
from feedback_app.services.campaigns import CampaignError, campaign_guidelines_set, guidelines_acknowledge
from feedback_app.selectors.campaigns import campaign_default

pytestmark = pytest.mark.django_db


def test_markdown_is_rendered_with_raw_html_escaped_and_unsafe_links_dropped():
    html = markdown_html("# Tone\n**Kind** replies. <script>alert(1)</script> [x](javascript:alert(1)) [policy](https://example.com/p)\n\n"
                         "| a | b |\n|---|---|\n| 1 | 2 |")
    assert "<h1>Tone</h1>" in html and "<strong>Kind</strong>" in html and "<table>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html and '<a href="https://example.com/p">policy</a>' in html
    assert markdown_html("") == ""


def test_a_change_raises_the_version_once_with_an_audit_entry_and_the_same_text_changes_nothing(researcher):
    assert campaign_default().guidelines_version == 0
    assert campaign_guidelines_set(campaign=campaign_default(), user=researcher, text="Prefer replies that solve the problem.\r\n").guidelines_version == 1
    assert campaign_default().guidelines == "Prefer replies that solve the problem."
    assert campaign_guidelines_set(campaign=campaign_default(), user=researcher, text="  Prefer replies that solve the problem.  ").guidelines_version == 1
    assert campaign_guidelines_set(campaign=campaign_default(), user=researcher, text="Prefer short replies.").guidelines_version == 2
    assert list(AuditEntry.objects.filter(action="guidelines.update").values_list("details__version", flat=True)) == [2, 1]


def test_too_long_guidelines_are_refused_by_size_and_nothing_changes(researcher):
    with pytest.raises(CampaignError, match="at most 50,000"):
        campaign_guidelines_set(campaign=campaign_default(), user=researcher, text="x" * 50_001)
    assert campaign_default().guidelines_version == 0


def test_every_rater_label_records_the_guidelines_version(rater, researcher, make_comparisons, django_capture_on_commit_callbacks):
    first, second = make_comparisons(2)
    assert assignment_lease_next(campaign=campaign_default(), rater=rater).comparison_id == first.pk
    label_record(campaign=campaign_default(), rater=rater, comparison_id=first.pk, submission=LabelSubmission(choice="left"))
    with django_capture_on_commit_callbacks(execute=True):  # the settings cache is cleared once the change commits
        campaign_guidelines_set(campaign=campaign_default(), user=researcher, text="Prefer replies that solve the problem.")
    assert assignment_lease_next(campaign=campaign_default(), rater=rater).comparison_id == second.pk
    label_record(campaign=campaign_default(), rater=rater, comparison_id=second.pk, submission=LabelSubmission(choice="right"))
    assert list(PreferenceLabel.objects.order_by("id").values_list("guidelines_version", flat=True)) == [0, 1]


def test_acknowledging_never_goes_past_the_current_version_or_back(rater, researcher):
    campaign_guidelines_set(campaign=campaign_default(), user=researcher, text="Version one.")
    guidelines_acknowledge(campaign=campaign_default(), user=rater, version=7)
    assert CampaignMember.objects.get(user=rater, campaign_id=DEFAULT_CAMPAIGN_ID).guidelines_seen == 1
    campaign_guidelines_set(campaign=campaign_default(), user=researcher, text="Version two.")
    guidelines_acknowledge(campaign=campaign_default(), user=rater, version=0)
    assert CampaignMember.objects.get(user=rater, campaign_id=DEFAULT_CAMPAIGN_ID).guidelines_seen == 1
