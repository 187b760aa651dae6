from django.test import RequestFactory

from feedback_app.views.streaming import streaming_download


def test_a_download_is_an_attachment_that_runs_nothing():
    """Downloads are attachments, never sniffed, and sandboxed with no sources if shown."""
    response = streaming_download(RequestFactory().get("/"), iter([b"=1+1\n"]), content_type="text/csv", filename="x.csv")
    assert response["Content-Disposition"] == 'attachment; filename="x.csv"'
    assert response["Content-Security-Policy"] == "sandbox; default-src 'none'"
    assert response["X-Content-Type-Options"] == "nosniff" and response["Cache-Control"] == "no-store"
    assert b"".join(response.streaming_content) == b"=1+1\n"


def test_a_filename_with_quotes_cannot_break_the_header():
    response = streaming_download(RequestFactory().get("/"), iter([]), content_type="text/csv", filename='a"; b=c.csv')
    assert response["Content-Disposition"] == 'attachment; filename="a\\"; b=c.csv"'
