import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_every_page_gets_the_strict_policy(researcher):
    client = Client()
    client.force_login(researcher)
    for path in ("/login/", "/label/", "/dashboard/", "/admin/"):
        policy = client.get(path)["Content-Security-Policy"]
        assert "script-src 'self';" in policy and "style-src 'self';" in policy and "frame-ancestors 'none'" in policy, path
        assert "unsafe" not in policy, path


def test_the_browsable_api_may_use_inline_styles_but_not_scripts(researcher):
    client = Client()
    client.force_login(researcher)
    policy = client.get("/api/v1/stats/", HTTP_ACCEPT="text/html")["Content-Security-Policy"]
    assert "style-src 'self' 'unsafe-inline'" in policy and "script-src 'self';" in policy


def test_report_only_mode_sends_the_report_only_header(settings, db):
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = True
    response = Client().get("/login/")
    assert "Content-Security-Policy" not in response and "script-src 'self'" in response["Content-Security-Policy-Report-Only"]


def test_no_page_template_has_inline_script_or_style():
    """Every <script> has a src (or is JSON data), and no element has a style or on* attribute."""
    import re
    from pathlib import Path

    from django.conf import settings

    for path in (Path(settings.BASE_DIR) / "templates").rglob("*.html"):
        html = path.read_text()
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag or 'type="application/json"' in tag, f"{path}: {tag}"
        assert not re.search(r"<[^>]+\sstyle=", html), path
        assert not re.search(r"<[^>]+\son[a-z]+=", html), path
