"""/api/schema/ shows in a browser (JSON, inline) and still negotiates YAML/JSON for tools."""

from __future__ import annotations

import json

import pytest
import yaml

pytestmark = pytest.mark.django_db

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_a_browser_gets_the_schema_as_json_it_can_display(client) -> None:
    response = client.get("/api/schema/", HTTP_ACCEPT=BROWSER_ACCEPT)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert not response.get("Content-Disposition", "").startswith("attachment")
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert "/reconciliation/mismatches" in schema["paths"]


def test_tools_still_get_yaml_by_default_and_json_on_request(client) -> None:
    default = client.get("/api/schema/")
    as_json = client.get("/api/schema/?format=json", HTTP_ACCEPT=BROWSER_ACCEPT)
    oai_json = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert default["Content-Type"].startswith("application/vnd.oai.openapi")
    assert yaml.safe_load(default.content)["openapi"].startswith("3.")
    assert json.loads(as_json.content)["openapi"].startswith("3.")
    assert oai_json["Content-Type"].startswith("application/vnd.oai.openapi+json")


def test_the_schema_documents_the_new_filters_and_progress(client) -> None:
    schema = json.loads(client.get("/api/schema/?format=json").content)

    mismatch_parameters = {
        p["name"] for p in schema["paths"]["/reconciliation/mismatches"]["get"]["parameters"]
    }
    assert {"detected_after", "detected_before", "last_seen_after", "last_seen_before"} <= (
        mismatch_parameters
    )
    job = schema["components"]["schemas"]["Job"]["properties"]
    assert job["progress"]["maximum"] == 100
