"""The flows of shared/lexful-api/common-flows.md and update-an-asset.md, replayed as written.

Each step sends the request the docs' curl command sends (same method, path, headers and
body), so the sandbox stays faithful to the pages the connector is built from.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from lexful_source.sandbox import DatasetSize, LexfulSandbox


@pytest.fixture
def flow(make_sandbox: Callable[..., LexfulSandbox]) -> tuple[httpx.Client, LexfulSandbox]:
    sandbox = make_sandbox(size=DatasetSize(contacts=150, organizations=120))
    client = httpx.Client(base_url=sandbox.url, timeout=10)
    creds = sandbox.credentials
    # Flow: Authenticate and list organizations / Step "Get a token"
    response = client.post(
        "/v1/auth/token",
        headers={"X-Account-Id": creds["account_id"], "Content-Type": "application/json"},
        json={"id": creds["api_key_id"], "secret": creds["api_key_secret"]},
    )
    assert response.status_code == 200
    client.headers.update(
        {"X-Account-ID": creds["account_id"], "Authorization": f"Bearer {response.json()['token']}"}
    )
    yield client, sandbox
    client.close()


def test_authenticate_and_list_organizations(flow: tuple[httpx.Client, LexfulSandbox]) -> None:
    client, sandbox = flow
    doc = client.get("/v1/organizations").json()
    assert doc["total"] == len(sandbox.truth("organizations", include_deleted=False))
    assert doc["items"]


def test_create_an_organization_and_add_assets(flow: tuple[httpx.Client, LexfulSandbox]) -> None:
    client, _ = flow
    org = client.post(
        "/v1/organizations", json={"name": "Acme Corporation", "type": "client", "status": "active"}
    )
    assert org.status_code == 201, org.text
    org_id = org.json()["id"]
    contact = client.post(
        "/v1/assets/system.contact",
        json={
            "organization_id": org_id,
            "first_name": "Jane",
            "last_name": "Smith",
            "title": "VP of Engineering",
            "important": False,
            "contact_type": "Influencer",
            "contact_methods": [{"type": "Email", "value": "jane.smith@example.com"}],
        },
    )
    assert contact.status_code == 201, contact.text
    listed = client.get(f"/v1/assets/system.contact?organization_id={org_id}").json()
    assert [c["id"] for c in listed["items"]] == [contact.json()["id"]]
    assert listed["items"][0]["organization_name"] == "Acme Corporation"
    again = client.post("/v1/organizations", json={"name": "Acme Corporation"})
    assert again.status_code == 409


def test_filter_and_sort_assets(flow: tuple[httpx.Client, LexfulSandbox]) -> None:
    client, sandbox = flow
    live = sandbox.truth("system.contact", include_deleted=False)
    wanted = {"Decision Maker", "Influencer"}
    by_value = client.get(
        "/v1/assets/system.contact?important[eq]=true&contact_type[in]=Decision Maker,Influencer"
    ).json()
    expected = [c for c in live if c["important"] and c["contact_type"] in wanted]
    assert by_value["total"] == len(expected) > 0
    assert all(c["important"] and c["contact_type"] in wanted for c in by_value["items"])

    newest_first = client.get(
        "/v1/assets/system.contact?important[eq]=true&created_at[gte]=2024-01-01"
        "&sort=created_at&order=DESC"
    ).json()["items"]
    stamps = [c["created_at"] for c in newest_first]
    assert stamps == sorted(stamps, reverse=True) and stamps
    assert min(stamps) >= "2024-01-01"

    projected = client.get(
        "/v1/assets/system.contact?important[eq]=true&fields=first_name,last_name,title,contact_methods"
    ).json()["items"]
    assert {tuple(c) for c in projected} == {
        ("id", "first_name", "last_name", "title", "contact_methods")
    }


def test_paginate_through_a_large_result_set(flow: tuple[httpx.Client, LexfulSandbox]) -> None:
    client, sandbox = flow
    seen, offset = [], 0
    while True:
        page = client.get(f"/v1/organizations?limit=50&offset={offset}").json()
        assert (page["limit"], page["offset"]) == (50, offset)
        seen.extend(o["id"] for o in page["items"])
        offset += 50
        if offset >= page["total"]:
            break
    live = sandbox.truth("organizations", include_deleted=False)
    assert sorted(seen) == sorted(o["id"] for o in live)
    assert offset > 50, "the dataset spans several pages"


def test_link_related_assets(flow: tuple[httpx.Client, LexfulSandbox]) -> None:
    client, sandbox = flow
    contact = sandbox.truth("system.contact", include_deleted=False)[0]
    config = sandbox.truth("system.configuration", include_deleted=False)[0]
    added = client.put(
        f"/v1/assets/system.contact/{contact['id']}/related",
        json=[{"asset_id": config["id"], "description": "Primary contact for this configuration"}],
    )
    assert added.status_code == 200, added.text
    listed = client.get(f"/v1/assets/system.contact/{contact['id']}/related").json()["items"]
    assert listed == [
        {
            "asset_type": "system.configuration",
            "asset_id": config["id"],
            "name": config["name"],
            "description": "Primary contact for this configuration",
        }
    ]
    missing = client.put(
        f"/v1/assets/system.contact/{contact['id']}/related", json=[{"asset_id": "nope"}]
    )
    assert missing.status_code == 400


def test_upload_a_file_to_an_asset(flow: tuple[httpx.Client, LexfulSandbox]) -> None:
    client, sandbox = flow
    contact_id = sandbox.truth("system.contact", include_deleted=False)[0]["id"]
    base = f"/v1/assets/system.contact/{contact_id}/files"
    created = client.post(
        base,
        json={
            "name": "resume",
            "original_name": "resume.pdf",
            "file_extension": ".pdf",
            "mime_type": "application/pdf",
            "size": 204800,
        },
    )
    assert created.status_code == 201, created.text
    file_id, upload_url = created.json()["file"]["id"], created.json()["presignedUploadUrl"]
    early = client.post(f"{base}/{file_id}/complete")
    assert early.status_code == 400
    pdf = b"%PDF-1.4 resume"
    uploaded = httpx.put(upload_url, headers={"Content-Type": "application/pdf"}, content=pdf)
    assert uploaded.status_code == 200
    assert client.post(f"{base}/{file_id}/complete").json()["status"] == "uploaded"
    download = client.get(f"{base}/{file_id}/download").json()["url"]
    fetched = httpx.get(download)
    assert (fetched.content, fetched.headers["content-type"]) == (pdf, "application/pdf")
    assert httpx.get(download.replace("signature=", "signature=x")).status_code == 403


def test_update_an_asset(flow: tuple[httpx.Client, LexfulSandbox]) -> None:
    client, sandbox = flow
    contact = sandbox.truth("system.contact", include_deleted=False)[0]
    response = client.patch(
        f"/v1/assets/system.contact/{contact['id']}",
        json={
            "title": "Chief Technology Officer",
            "important": True,
            "contact_methods": [
                {"type": "Email", "value": "jane.smith.new@example.com"},
                {"type": "Mobile", "value": "+1-555-0456"},
            ],
            "visibility": "restricted",
        },
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["title"] == "Chief Technology Officer"
    assert updated["visibility"] == "restricted"
    assert [m["type"] for m in updated["contact_methods"]] == ["Email", "Mobile"]
    assert updated["updated_at"] > contact["updated_at"]
    assert updated["references"] == contact["references"]
    assert (
        client.patch(
            f"/v1/assets/system.contact/{contact['id']}", json={"visibility": "public"}
        ).status_code
        == 400
    )
