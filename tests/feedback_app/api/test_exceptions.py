import pytest
from django.core.exceptions import ValidationError

from feedback_app.api.exceptions import api_exception_handler


def test_a_model_validation_error_is_a_400_naming_its_fields():
    response = api_exception_handler(ValidationError({"required_labels": ["must be at least 1"]}), {})
    assert response.status_code == 400 and response.data == {"required_labels": ["must be at least 1"]}


def test_a_validation_error_without_fields_is_a_400_too():
    response = api_exception_handler(ValidationError("the batch is empty"), {})
    assert response.status_code == 400 and response.data == {"non_field_errors": ["the batch is empty"]}


@pytest.mark.django_db
def test_unknown_urls_answer_json_under_the_api_and_html_elsewhere(client):
    api = client.get("/api/v1/no-such-thing/")
    assert api.status_code == 404 and api["Content-Type"] == "application/json" and "no API endpoint" in api.json()["detail"]
    site = client.get("/no-such-page/")
    assert site.status_code == 404 and site["Content-Type"].startswith("text/html")
