"""flowd driven by Losant's official Python client (`losant-rest` 2.3.0, module `losant_rest`), unchanged.

Run through `scripts/python-client-tests`, which starts a server and sets:
  FLOWD_URL          base URL of the running server, e.g. http://127.0.0.1:41234
  FLOWD_OWNER_TOKEN  the owner token the server was started with

The client hides success status codes, so every HTTP exchange it makes is recorded (by wrapping
`requests.request`, which the client calls; the client itself is not modified) and the tests check
the status of the last exchange: 201 for creations and imports, 200 otherwise. Errors surface as
`LosantError(status, data)`; error bodies are `{"type": ..., "message": ...}`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass

import pytest
import requests
from losant_rest import Client
from losant_rest.losant_error import LosantError

HEX24 = re.compile(r"^[0-9a-fA-F]{24}$")

TRIGGERS = [{"type": "virtualButton", "key": "btn", "outputIds": [["n1"]]}]
NODES = [{"id": "n1", "type": "DebugNode", "config": {}, "outputIds": [[]]}]


# ---------------------------------------------------------------------------------------------
# Recording the HTTP exchanges the client makes
# ---------------------------------------------------------------------------------------------


@dataclass
class Exchange:
    method: str
    url: str
    request_body: str
    status: int
    response_body: str

    def __str__(self) -> str:
        req = f"{self.method} {self.url}"
        if self.request_body:
            req += f"\n  request body: {self.request_body}"
        return f"{req}\n  -> {self.status} {self.response_body[:2000]}"


EXCHANGES: list[Exchange] = []


@pytest.fixture(scope="session", autouse=True)
def _record_exchanges():
    real_request = requests.request

    def recording_request(method, url, **kwargs):
        response = real_request(method, url, **kwargs)
        body = response.request.body
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        EXCHANGES.append(
            Exchange(
                method=response.request.method,
                url=response.request.url,
                request_body=body or "",
                status=response.status_code,
                response_body=response.text,
            )
        )
        return response

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(requests, "request", recording_request)
        yield


def last_exchange() -> Exchange:
    assert EXCHANGES, "the client made no HTTP request"
    return EXCHANGES[-1]


def ok(action, status: int = 200, **kwargs):
    """Calls a client action, expecting success with `status`; returns the decoded body."""
    before = len(EXCHANGES)
    try:
        result = action(**kwargs)
    except LosantError as err:
        ex = EXCHANGES[-1] if len(EXCHANGES) > before else None
        pytest.fail(f"expected {status}, got LosantError {err.status} {err.data}\n{ex}")
    assert len(EXCHANGES) == before + 1, "expected exactly one HTTP request"
    ex = last_exchange()
    assert ex.status == status, f"expected {status}\n{ex}"
    return result


def fails(action, status: int, error_type: str, **kwargs) -> dict:
    """Calls a client action, expecting a LosantError with `status` and body type `error_type`."""
    with pytest.raises(LosantError) as info:
        action(**kwargs)
    err = info.value
    ex = last_exchange()
    assert err.status == status, f"expected {status} {error_type}\n{ex}"
    assert isinstance(err.data, dict), f"error body is not a JSON object\n{ex}"
    assert err.data.get("type") == error_type, f"expected type {error_type!r}\n{ex}"
    message = err.data.get("message")
    assert isinstance(message, str) and message, f"error body has no message\n{ex}"
    return err.data


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------------


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run these tests through scripts/python-client-tests")
    return value


@pytest.fixture(scope="session")
def url() -> str:
    return _env("FLOWD_URL").rstrip("/")


@pytest.fixture(scope="session")
def owner(url) -> Client:
    return Client(auth_token=_env("FLOWD_OWNER_TOKEN"), url=url)


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def random_id() -> str:
    return secrets.token_hex(12)


@pytest.fixture
def app(owner):
    """A fresh application for one test, deleted afterwards."""
    created = ok(
        owner.applications.post,
        201,
        application={"name": unique("pytest-app"), "description": "made by test_official_client"},
    )
    yield created
    try:
        owner.application.delete(applicationId=created["id"])
    except LosantError:
        pass  # the test deleted it itself


def make_flow(client: Client, app_id: str, **fields) -> dict:
    body = {"name": unique("f"), "triggers": TRIGGERS, "nodes": NODES}
    body.update(fields)
    return ok(client.flows.post, 201, applicationId=app_id, flow=body)


def make_token(client: Client, app_id: str, scope: list[str]) -> dict:
    return ok(
        client.application_api_tokens.post,
        201,
        applicationId=app_id,
        apiToken={"name": unique("tok"), "scope": scope},
    )


def compact_json_bytes(value) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def assert_graph(doc: dict) -> None:
    """The flow (or version) carries the virtual button wired to the debug node."""
    assert len(doc["triggers"]) == 1, doc["triggers"]
    trigger = doc["triggers"][0]
    assert trigger["type"] == "virtualButton"
    assert trigger["key"] == "btn"
    assert trigger["outputIds"] == [["n1"]]
    assert len(doc["nodes"]) == 1, doc["nodes"]
    node = doc["nodes"][0]
    assert node["id"] == "n1"
    assert node["type"] == "DebugNode"
    assert node["outputIds"] == [[]]


# ---------------------------------------------------------------------------------------------
# Applications
# ---------------------------------------------------------------------------------------------


def test_application_create_list_get_patch(owner):
    name = unique("pytest-app")
    created = ok(owner.applications.post, 201, application={"name": name, "description": "first"})
    app_id = created["id"]
    try:
        assert HEX24.match(app_id), created
        assert created["applicationId"] == app_id
        assert created["name"] == name
        assert created["description"] == "first"

        listed = ok(owner.applications.get)
        assert app_id in [item["id"] for item in listed["items"]]

        filtered = ok(owner.applications.get, filterField="name", filter=name)
        assert [item["id"] for item in filtered["items"]] == [app_id]
        assert filtered["count"] == 1
        assert filtered["totalCount"] == 1

        got = ok(owner.application.get, applicationId=app_id)
        assert got["id"] == app_id
        assert got["name"] == name

        new_name = unique("pytest-app-renamed")
        patched = ok(
            owner.application.patch,
            applicationId=app_id,
            application={"name": new_name, "description": "second"},
        )
        assert patched["id"] == app_id
        assert patched["name"] == new_name
        assert patched["description"] == "second"

        again = ok(owner.application.get, applicationId=app_id)
        assert again["name"] == new_name
        assert again["description"] == "second"
    finally:
        try:
            owner.application.delete(applicationId=app_id)
        except LosantError:
            pass


def test_delete_application(owner):
    created = ok(owner.applications.post, 201, application={"name": unique("pytest-app")})
    app_id = created["id"]
    flow = make_flow(owner, app_id)

    assert ok(owner.application.delete, applicationId=app_id) == {"success": True}

    fails(owner.application.get, 404, "NotFound", applicationId=app_id)
    fails(owner.flows.get, 404, "NotFound", applicationId=app_id)
    fails(owner.flow.get, 404, "NotFound", applicationId=app_id, flowId=flow["id"])
    listed = ok(owner.applications.get)
    assert app_id not in [item["id"] for item in listed["items"]]


# ---------------------------------------------------------------------------------------------
# Application API tokens
# ---------------------------------------------------------------------------------------------


def test_application_token_reads_flow(owner, url, app):
    flow = make_flow(owner, app["id"])

    token = make_token(owner, app["id"], ["all.Application"])
    assert HEX24.match(token["id"]), token
    assert token["apiTokenId"] == token["id"]
    assert token["scope"] == ["all.Application"]
    assert token["status"] == "active"
    assert isinstance(token["token"], str) and token["token"]

    listed = ok(owner.application_api_tokens.get, applicationId=app["id"])
    items = {item["id"]: item for item in listed["items"]}
    assert token["id"] in items
    assert "token" not in items[token["id"]], "the token string is only returned at creation"

    got_token = ok(owner.application_api_token.get, applicationId=app["id"], apiTokenId=token["id"])
    assert got_token["id"] == token["id"]
    assert got_token["scope"] == ["all.Application"]

    as_app = Client(auth_token=token["token"], url=url)
    got = ok(as_app.flow.get, applicationId=app["id"], flowId=flow["id"])
    assert got["id"] == flow["id"]
    assert got["name"] == flow["name"]
    assert_graph(got)

    # …and it can write to that application's flows.
    ok(
        as_app.flow.set_storage_entry,
        applicationId=app["id"],
        flowId=flow["id"],
        entry={"key": "by-token", "value": 1},
    )
    assert ok(as_app.flow.get_storage_entries, applicationId=app["id"], flowId=flow["id"]) == {
        "by-token": 1
    }


def test_token_of_another_application_is_forbidden(owner, url, app):
    other = ok(owner.applications.post, 201, application={"name": unique("pytest-other")})
    try:
        other_flow = make_flow(owner, other["id"])
        token = make_token(owner, app["id"], ["all.Application"])
        as_app = Client(auth_token=token["token"], url=url)
        fails(as_app.flow.get, 403, "Forbidden", applicationId=other["id"], flowId=other_flow["id"])
    finally:
        try:
            owner.application.delete(applicationId=other["id"])
        except LosantError:
            pass


def test_read_only_token_is_forbidden_to_write(owner, url, app):
    flow = make_flow(owner, app["id"])
    ok(
        owner.flow.set_storage_entry,
        applicationId=app["id"],
        flowId=flow["id"],
        entry={"key": "k", "value": "v"},
    )
    token = make_token(owner, app["id"], ["all.Application.read"])
    reader = Client(auth_token=token["token"], url=url)

    # Reads are allowed.
    assert ok(reader.flow.get, applicationId=app["id"], flowId=flow["id"])["id"] == flow["id"]
    assert ok(reader.flow.get_storage_entries, applicationId=app["id"], flowId=flow["id"]) == {
        "k": "v"
    }

    # Writes are not.
    fails(
        reader.flow.set_storage_entry,
        403,
        "Forbidden",
        applicationId=app["id"],
        flowId=flow["id"],
        entry={"key": "k", "value": "changed"},
    )
    fails(reader.flow.clear_storage_entries, 403, "Forbidden", applicationId=app["id"], flowId=flow["id"])
    fails(
        reader.flow.patch,
        403,
        "Forbidden",
        applicationId=app["id"],
        flowId=flow["id"],
        flow={"name": "nope"},
    )

    # Nothing changed.
    assert ok(owner.flow.get_storage_entries, applicationId=app["id"], flowId=flow["id"]) == {"k": "v"}
    assert ok(owner.flow.get, applicationId=app["id"], flowId=flow["id"])["name"] == flow["name"]


def test_bad_or_missing_token_is_unauthorized(url, owner, app):
    flow = make_flow(owner, app["id"])
    for bad in (secrets.token_hex(32), "not-a-token"):
        client = Client(auth_token=bad, url=url)
        fails(client.flow.get, 401, "Unauthorized", applicationId=app["id"], flowId=flow["id"])
        fails(client.applications.get, 401, "Unauthorized")
    anonymous = Client(auth_token=None, url=url)
    fails(anonymous.flow.get, 401, "Unauthorized", applicationId=app["id"], flowId=flow["id"])


# ---------------------------------------------------------------------------------------------
# Flows
# ---------------------------------------------------------------------------------------------


def test_flow_create_get_patch(owner, app):
    flow = ok(
        owner.flows.post,
        201,
        applicationId=app["id"],
        flow={"name": "f", "triggers": TRIGGERS, "nodes": NODES},
    )
    flow_id = flow["id"]
    assert HEX24.match(flow_id), flow
    assert flow["flowId"] == flow_id
    assert flow["applicationId"] == app["id"]
    assert flow["name"] == "f"
    assert flow["enabled"] is True  # created enabled when `enabled` is omitted
    assert flow["flowClass"] == "cloud"
    assert_graph(flow)

    got = ok(owner.flow.get, applicationId=app["id"], flowId=flow_id)
    assert got["id"] == flow_id
    assert got["name"] == "f"
    assert got["enabled"] is True
    assert_graph(got)

    patched = ok(
        owner.flow.patch,
        applicationId=app["id"],
        flowId=flow_id,
        flow={"name": "f2", "enabled": False},
    )
    assert patched["id"] == flow_id
    assert patched["name"] == "f2"
    assert patched["enabled"] is False
    assert_graph(patched)  # PATCH without triggers/nodes keeps them

    again = ok(owner.flow.get, applicationId=app["id"], flowId=flow_id)
    assert again["name"] == "f2"
    assert again["enabled"] is False
    assert_graph(again)


def test_flows_list_sort_filter_page(owner, app):
    tag = secrets.token_hex(4)
    for suffix in ("b", "a", "c"):
        make_flow(owner, app["id"], name=f"{tag}-{suffix}")
    make_flow(owner, app["id"], name=unique("other"))

    everything = ok(owner.flows.get, applicationId=app["id"])
    assert everything["totalCount"] == 4
    assert everything["count"] == 4
    assert len(everything["items"]) == 4

    asc = ok(
        owner.flows.get,
        applicationId=app["id"],
        sortField="name",
        sortDirection="asc",
        filterField="name",
        filter=f"{tag}-*",
    )
    assert [item["name"] for item in asc["items"]] == [f"{tag}-a", f"{tag}-b", f"{tag}-c"]
    assert asc["count"] == 3
    assert asc["totalCount"] == 3

    desc = ok(
        owner.flows.get,
        applicationId=app["id"],
        sortField="name",
        sortDirection="desc",
        filterField="name",
        filter=f"{tag}-*",
    )
    assert [item["name"] for item in desc["items"]] == [f"{tag}-c", f"{tag}-b", f"{tag}-a"]

    page0 = ok(
        owner.flows.get,
        applicationId=app["id"],
        sortField="name",
        sortDirection="asc",
        filterField="name",
        filter=f"{tag}-*",
        perPage="2",
        page="0",
    )
    assert [item["name"] for item in page0["items"]] == [f"{tag}-a", f"{tag}-b"]
    assert page0["totalCount"] == 3
    page1 = ok(
        owner.flows.get,
        applicationId=app["id"],
        sortField="name",
        sortDirection="asc",
        filterField="name",
        filter=f"{tag}-*",
        perPage="2",
        page="1",
    )
    assert [item["name"] for item in page1["items"]] == [f"{tag}-c"]
    assert page1["totalCount"] == 3

    none = ok(owner.flows.get, applicationId=app["id"], filterField="name", filter="no-such-flow-*")
    assert none["items"] == []
    assert none["count"] == 0
    assert none["totalCount"] == 0


def test_flow_post_with_unknown_field_is_validation_error(owner, app):
    body = fails(
        owner.flows.post,
        400,
        "Validation",
        applicationId=app["id"],
        flow={"name": "f", "triggers": [], "nodes": [], "bogusField": 1},
    )
    assert "bogusField" in body["message"], body
    fails(owner.flows.post, 400, "Validation", applicationId=app["id"], flow={"triggers": []})
    listed = ok(owner.flows.get, applicationId=app["id"])
    assert listed["totalCount"] == 0, "a rejected flow must not be created"


def test_unknown_flow_is_not_found(owner, app):
    missing = random_id()
    fails(owner.flow.get, 404, "NotFound", applicationId=app["id"], flowId=missing)
    fails(owner.flow.get_storage_entries, 404, "NotFound", applicationId=app["id"], flowId=missing)
    fails(
        owner.flow.patch, 404, "NotFound", applicationId=app["id"], flowId=missing, flow={"name": "x"}
    )
    fails(owner.flow.delete, 404, "NotFound", applicationId=app["id"], flowId=missing)
    fails(owner.flow.get, 404, "NotFound", applicationId=app["id"], flowId="not-an-id")
    fails(owner.flows.get, 404, "NotFound", applicationId=random_id())


def test_delete_flow_then_get_is_not_found(owner, app):
    flow = make_flow(owner, app["id"])
    assert ok(owner.flow.delete, applicationId=app["id"], flowId=flow["id"]) == {"success": True}
    fails(owner.flow.get, 404, "NotFound", applicationId=app["id"], flowId=flow["id"])
    fails(owner.flow.get_storage_entries, 404, "NotFound", applicationId=app["id"], flowId=flow["id"])
    listed = ok(owner.flows.get, applicationId=app["id"])
    assert flow["id"] not in [item["id"] for item in listed["items"]]


def test_flows_import(owner, app):
    old_id = random_id()
    result = ok(
        owner.flows.api_import,
        201,
        applicationId=app["id"],
        importData={"flows": [{"id": old_id, "name": "imp", "triggers": [], "nodes": []}]},
    )
    id_map = result["importedFlowIdMap"]
    assert list(id_map) == [old_id], result
    new_id = id_map[old_id]
    assert HEX24.match(new_id), result
    assert [flow["id"] for flow in result["flows"]] == [new_id]
    assert result["flows"][0]["name"] == "imp"

    got = ok(owner.flow.get, applicationId=app["id"], flowId=new_id)
    assert got["name"] == "imp"
    assert got["applicationId"] == app["id"]
    assert got["enabled"] is False  # imported flows start disabled
    assert got["triggers"] == []
    assert got["nodes"] == []


# ---------------------------------------------------------------------------------------------
# Workflow storage
# ---------------------------------------------------------------------------------------------


def test_storage_entries_and_metadata(owner, app):
    flow = make_flow(owner, app["id"])
    ids = {"applicationId": app["id"], "flowId": flow["id"]}

    assert ok(owner.flow.get_storage_entries, **ids) == {}
    meta = ok(owner.flow.get_storage_entries_metadata, **ids)
    assert (meta["memoryUsed"], meta["keysCount"]) == (0, 0)

    entries = {
        "count": 42,
        "greeting": "hello",
        "obj": {"a": [1, 2], "b": {"c": True}, "n": None},
        "naïve-ключ": "utf-8 key",
    }
    for key, value in entries.items():
        result = ok(owner.flow.set_storage_entry, **ids, entry={"key": key, "value": value})
        assert result == {"success": True}

    assert ok(owner.flow.get_storage_entries, **ids) == entries

    def expected_memory(current: dict) -> int:
        return sum(len(k.encode("utf-8")) + compact_json_bytes(v) for k, v in current.items())

    meta = ok(owner.flow.get_storage_entries_metadata, **ids)
    assert meta["keysCount"] == 4
    assert meta["memoryUsed"] == expected_memory(entries), (meta, entries)

    # Upsert: overwriting keeps the key count.
    ok(owner.flow.set_storage_entry, **ids, entry={"key": "count", "value": 1234})
    entries["count"] = 1234
    assert ok(owner.flow.get_storage_entries, **ids) == entries
    meta = ok(owner.flow.get_storage_entries_metadata, **ids)
    assert meta["keysCount"] == 4
    assert meta["memoryUsed"] == expected_memory(entries)

    # An entry without `value` deletes the key.
    assert ok(owner.flow.set_storage_entry, **ids, entry={"key": "greeting"}) == {"success": True}
    del entries["greeting"]
    assert ok(owner.flow.get_storage_entries, **ids) == entries
    meta = ok(owner.flow.get_storage_entries_metadata, **ids)
    assert meta["keysCount"] == 3
    assert meta["memoryUsed"] == expected_memory(entries)

    # Clearing returns the now empty map.
    assert ok(owner.flow.clear_storage_entries, **ids) == {}
    assert ok(owner.flow.get_storage_entries, **ids) == {}
    meta = ok(owner.flow.get_storage_entries_metadata, **ids)
    assert (meta["memoryUsed"], meta["keysCount"]) == (0, 0)


def test_storage_is_per_flow(owner, app):
    first = make_flow(owner, app["id"])
    second = make_flow(owner, app["id"])
    ok(
        owner.flow.set_storage_entry,
        applicationId=app["id"],
        flowId=first["id"],
        entry={"key": "only-here", "value": [1, 2, 3]},
    )
    assert ok(owner.flow.get_storage_entries, applicationId=app["id"], flowId=first["id"]) == {
        "only-here": [1, 2, 3]
    }
    assert ok(owner.flow.get_storage_entries, applicationId=app["id"], flowId=second["id"]) == {}


# ---------------------------------------------------------------------------------------------
# Flow versions
# ---------------------------------------------------------------------------------------------


def test_flow_versions(owner, app):
    flow = make_flow(owner, app["id"])
    ids = {"applicationId": app["id"], "flowId": flow["id"]}

    v1 = ok(
        owner.flow_versions.post,
        201,
        **ids,
        flowVersion={"version": "v1", "notes": "first", "triggers": TRIGGERS, "nodes": NODES},
    )
    v1_id = v1["id"]
    assert HEX24.match(v1_id), v1
    assert v1["flowVersionId"] == v1_id
    assert v1["flowId"] == flow["id"]
    assert v1["applicationId"] == app["id"]
    assert v1["version"] == "v1"
    assert v1["notes"] == "first"
    assert_graph(v1)

    listed = ok(owner.flow_versions.get, **ids)
    assert [item["id"] for item in listed["items"]] == [v1_id]  # develop is not listed
    assert listed["count"] == 1
    assert listed["totalCount"] == 1
    assert listed["flowId"] == flow["id"]

    by_id = ok(owner.flow_version.get, **ids, flowVersionId=v1_id)
    assert by_id["id"] == v1_id
    assert by_id["version"] == "v1"
    assert_graph(by_id)
    by_name = ok(owner.flow_version.get, **ids, flowVersionId="v1")
    assert by_name["id"] == v1_id

    patched = ok(owner.flow_version.patch, **ids, flowVersionId=v1_id, flowVersion={"notes": "updated"})
    assert patched["id"] == v1_id
    assert patched["notes"] == "updated"
    assert ok(owner.flow_version.get, **ids, flowVersionId=v1_id)["notes"] == "updated"

    # Make v1 the default version.
    with_default = ok(owner.flow.patch, **ids, flow={"defaultVersionId": v1_id})
    assert with_default["defaultVersionId"] == v1_id
    assert ok(owner.flow.get, **ids)["defaultVersionId"] == v1_id

    # A second version; omitted graph ⇒ empty graph (develop is not copied).
    v2 = ok(owner.flow_versions.post, 201, **ids, flowVersion={"version": "v2"})
    assert v2["version"] == "v2"
    assert v2.get("triggers", []) == []
    assert v2.get("nodes", []) == []
    names = ok(owner.flow_versions.get, **ids, sortField="version", sortDirection="asc")
    assert [item["version"] for item in names["items"]] == ["v1", "v2"]

    assert ok(owner.flow_version.delete, **ids, flowVersionId=v2["id"]) == {"success": True}
    fails(owner.flow_version.get, 404, "NotFound", **ids, flowVersionId=v2["id"])
    fails(owner.flow_version.get, 404, "NotFound", **ids, flowVersionId="v2")

    # Unset the default, then v1 can go too.
    without_default = ok(owner.flow.patch, **ids, flow={"defaultVersionId": None})
    assert without_default.get("defaultVersionId") is None
    assert ok(owner.flow_version.delete, **ids, flowVersionId=v1_id) == {"success": True}
    assert ok(owner.flow_versions.get, **ids)["totalCount"] == 0

    # The develop graph on the flow itself was never touched.
    assert_graph(ok(owner.flow.get, **ids))


def test_unknown_flow_version_is_not_found(owner, app):
    flow = make_flow(owner, app["id"])
    ids = {"applicationId": app["id"], "flowId": flow["id"]}
    fails(owner.flow_version.get, 404, "NotFound", **ids, flowVersionId=random_id())
    fails(owner.flow_version.get, 404, "NotFound", **ids, flowVersionId="no-such-version")
    fails(owner.flow_versions.get, 404, "NotFound", applicationId=app["id"], flowId=random_id())


# ---------------------------------------------------------------------------------------------
# Runs: press a virtual button, then read storage, logs, errors and stats
# ---------------------------------------------------------------------------------------------


def wait_for_logs(client: Client, app_id: str, flow_id: str, runs: int) -> list:
    import time

    deadline = time.monotonic() + 30
    while True:
        logs = ok(client.flow.get_log_entries, applicationId=app_id, flowId=flow_id, limit="100")
        if len(logs) >= runs or time.monotonic() > deadline:
            return logs
        time.sleep(0.05)


def test_press_virtual_button_and_read_the_history(owner, app):
    flow = make_flow(
        owner,
        app["id"],
        triggers=[
            {"type": "virtualButton", "key": "go", "outputIds": [["incr"]]},
            {"type": "virtualButton", "key": "bad", "outputIds": [["decode"]]},
        ],
        nodes=[
            {
                "id": "incr",
                "type": "StoreValueNode",
                "config": {"keyName": "n", "valueType": "incr", "value": "{{data.by}}"},
                "outputIds": [[]],
            },
            {
                "id": "decode",
                "type": "JsonDecodeNode",
                "meta": {"label": "Decode"},
                "config": {"source": "data.text", "destination": "working.v"},
                "outputIds": [[]],
            },
        ],
    )
    ids = {"applicationId": app["id"], "flowId": flow["id"]}
    for by in (1, 2, 3):
        result = ok(owner.flow.press_virtual_button, button={"key": "go", "payload": {"by": by}}, **ids)
        assert result == {"success": True}
    ok(owner.flow.press_virtual_button, button={"key": "bad", "payload": {"text": "{nope"}}, **ids)
    logs = wait_for_logs(owner, app["id"], flow["id"], 4)
    assert len(logs) == 4
    assert sum(entry["pathsFailed"] for entry in logs) == 1

    assert ok(owner.flow.get_storage_entries, **ids) == {"n": 6}
    errors = ok(owner.flow.errors, **ids)
    assert [e["nodeId"] for e in errors["errors"]] == ["decode"]
    assert errors["errors"][0]["nodeLabel"] == "Decode"
    assert errors["errors"][0]["error"]["name"] == "ValidationError"
    stats = ok(owner.flow.stats, resolution="60000", **ids)
    assert sum(m["runCount"] for m in stats["metrics"]) == 4
    assert sum(m["pathsCompleted"] for m in stats["metrics"]) == 3

    fails(owner.flow.press_virtual_button, 400, "Validation", button={"key": "missing"}, **ids)


# ---------------------------------------------------------------------------------------------
# Integrations
# ---------------------------------------------------------------------------------------------


def test_mqtt_integration_lifecycle(owner, app):
    body = {
        "name": unique("broker"),
        "integrationType": "mqtt",
        "topics": ["plant/+/telemetry"],
        "mqttConfig": {"host": "127.0.0.1", "port": 1883, "protocol": "mqtt"},
    }
    created = ok(owner.integrations.post, 201, applicationId=app["id"], integration=body)
    assert HEX24.match(created["id"]) and created["integrationId"] == created["id"]
    assert created["topics"] == ["plant/+/telemetry"]
    listed = ok(owner.integrations.get, applicationId=app["id"], filterField="integrationType", filter="mqtt")
    assert created["id"] in [item["id"] for item in listed["items"]]
    fetched = ok(owner.integration.get, applicationId=app["id"], integrationId=created["id"])
    assert fetched["mqttConfig"]["port"] == 1883
    assert "connectInfo" in fetched["status"]
    patched = ok(
        owner.integration.patch,
        applicationId=app["id"],
        integrationId=created["id"],
        integration={"enabled": False},
    )
    assert patched["enabled"] is False
    fails(
        owner.integrations.post,
        400,
        "Validation",
        applicationId=app["id"],
        integration={"name": "q", "integrationType": "particle", "particleConfig": {"accessToken": "t"}},
    )
    assert ok(owner.integration.delete, applicationId=app["id"], integrationId=created["id"]) == {"success": True}
    fails(owner.integration.get, 404, "NotFound", applicationId=app["id"], integrationId=created["id"])


# ---------------------------------------------------------------------------------------------
# Webhooks
# ---------------------------------------------------------------------------------------------


def test_webhook_lifecycle(owner, app):
    ids = {"applicationId": app["id"]}
    created = ok(owner.webhooks.post, 201, webhook={"name": unique("hook")}, **ids)
    assert HEX24.match(created["id"]) and created["webhookId"] == created["id"]
    assert created["applicationId"] == app["id"]
    # Server-set: a URL-safe token naming the public URL, and Losant's defaults.
    token = created["token"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token), token
    assert created["responseCode"] == 200
    assert created["verificationType"] == "none"
    assert created["waitForReply"] is False
    assert created["enabled"] is True
    ids["webhookId"] = created["id"]

    secured = ok(
        owner.webhooks.post,
        201,
        applicationId=app["id"],
        webhook={
            "name": unique("secured"),
            "waitForReply": True,
            "basicAuthUsername": "user",
            "basicAuthPassword": "pass",
        },
    )
    assert secured["token"] != token

    listed = ok(owner.webhooks.get, applicationId=app["id"], sortField="creationDate", sortDirection="desc")
    assert [item["id"] for item in listed["items"]] == [secured["id"], created["id"]]
    assert listed["totalCount"] == 2
    filtered = ok(owner.webhooks.get, applicationId=app["id"], filterField="name", filter="secured*")
    assert [item["id"] for item in filtered["items"]] == [secured["id"]]

    fetched = ok(owner.webhook.get, **ids)
    assert fetched["token"] == token
    patched = ok(owner.webhook.patch, webhook={"enabled": False, "responseCode": 202}, **ids)
    assert patched["enabled"] is False and patched["responseCode"] == 202
    assert patched["token"] == token, "a webhook's URL never changes"

    # What flowd cannot honour yet is refused, naming the field.
    for body, field in [
        ({"verificationType": "twilio"}, "verificationType"),
        ({"isWebsocket": True}, "isWebsocket"),
        ({"basicAuthUsername": "only-a-user"}, "basicAuthPassword"),
    ]:
        error = fails(owner.webhook.patch, 400, "Validation", webhook=body, **ids)
        assert field in error["message"], error
    error = fails(owner.webhooks.post, 400, "Validation", applicationId=app["id"], webhook={"name": "x", "isWebsocket": True})
    assert "isWebsocket" in error["message"], error

    assert ok(owner.webhook.delete, **ids) == {"success": True}
    fails(owner.webhook.get, 404, "NotFound", **ids)
    fails(owner.webhook.delete, 404, "NotFound", **ids)
