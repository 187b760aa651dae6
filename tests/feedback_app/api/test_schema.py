import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def operations(client):
    schema = client.get("/api/schema/?format=json", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    return {(method.upper(), path): op for path, item in schema["paths"].items() for method, op in item.items()}


def test_every_operation_lists_the_errors_it_can_return(operations):
    for (method, path), op in operations.items():
        codes = set(op["responses"])
        if path != "/api/v1/auth/token/":
            assert {"401", "403"} <= codes, (method, path)
        if "{" in path:
            assert "404" in codes, (method, path)
        if method == "POST" and path != "/api/v1/auth/token/" and "activate" not in path:
            assert "429" in codes, (method, path)
        if op.get("requestBody") or any(p["in"] == "query" for p in op.get("parameters", [])):
            assert "400" in codes, (method, path)


def test_path_ids_are_bounded_integers(operations):
    params = operations[("POST", "/api/v1/comparisons/{comparison_id}/label/")]["parameters"]
    (comparison_id,) = [p for p in params if p["name"] == "comparison_id"]
    assert comparison_id["schema"] == {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}


def test_bodies_are_json_only(operations):
    for (method, path), op in operations.items():
        if "requestBody" in op and path != "/api/v1/auth/token/":
            assert set(op["requestBody"]["content"]) == {"application/json"}, (method, path)


def test_a_comparison_side_documents_its_truncated_flag(client):
    """The next comparison's left and right say, as a required boolean, whether the reply was cut off."""
    schema = client.get("/api/schema/?format=json", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    side = schema["components"]["schemas"]["ResponseSide"]
    assert side["properties"]["truncated"]["type"] == "boolean" and "truncated" in side["required"]


def test_generate_documents_the_mode_asked_for_and_the_mode_and_reward_model_used(client):
    """The request's mode is optional (sample or rerank); the answer's mode is required and its reward model may be null."""
    schema = client.get("/api/schema/?format=json", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    components = schema["components"]["schemas"]
    request, answer = components["GenerateRequest"], components["Generate"]
    assert "mode" in request["properties"] and "mode" not in request.get("required", [])
    assert {"policy", "mode", "reward_model", "replies"} <= set(answer["required"])
    assert answer["properties"]["reward_model"]["nullable"] is True
    (enum,) = {ref["$ref"] for ref in answer["properties"]["mode"]["allOf"]}
    assert components[enum.rsplit("/", 1)[1]]["enum"] == ["sample", "rerank"]


def test_the_label_request_documents_the_rewrite(client):
    """edited_text and edited_from are optional and described; the stored label names its rewrite response."""
    schema = client.get("/api/schema/?format=json", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    components = schema["components"]["schemas"]
    request = components["LabelRequest"]
    assert {"edited_text", "edited_from"} <= set(request["properties"]) and not {"edited_text", "edited_from"} & set(request.get("required", []))
    assert request["properties"]["edited_text"]["maxLength"] == 20000 and "human_edit" in request["properties"]["edited_text"]["description"]
    assert "Tie" in request["properties"]["edited_from"]["description"]
    assert components["LabelAndNext"]["properties"]["rewrite_response_id"]["nullable"] is True


def test_the_label_call_documents_next_in_the_same_answer(client):
    """?next=1 is a documented boolean; the answer's "next" is the leased comparison, optional and nullable."""
    schema = client.get("/api/schema/?format=json", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/api/v1/comparisons/{comparison_id}/label/"]["post"]
    (param,) = [p for p in operation["parameters"] if p["name"] == "next"]
    assert param["in"] == "query" and param["schema"]["type"] == "boolean"
    answer = schema["components"]["schemas"]["LabelAndNext"]
    assert "next" not in answer.get("required", []) and answer["properties"]["next"]["nullable"] is True
