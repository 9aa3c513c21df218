"""Schemathesis hooks for scripts/fuzz-api: real ids in the paths, throwaway targets for deletes.

Loaded by schemathesis (the `hooks` setting of the generated schemathesis.toml). On import it
creates, through flowd's API, what the operations need to reach their handlers instead of
answering 404: an application with a flow (a virtual button wired to a Debug node), a named
version of it, an application API token, a disabled MQTT integration and two webhooks. The
address and the owner token come from FLOWD_URL and FLOWD_OWNER_TOKEN.

Before each call, path parameters are replaced by those real ids most of the time (the rest keep
the generated value, so the 404 paths stay covered). A DELETE (and the bulk version delete) gets
a resource made for it alone, so the shared ones stay for the rest of the run. This hook puts
no real ids into the debug stream's path (`flow.debug`): the stream does not end. (Schemathesis
may still reach it with ids seen in other answers; it reads at most 20 events of a stream.)

After each call the status is counted per operation; at exit the counts go to
$FLOWD_FUZZ_REPORTS/statuses.txt, so a run shows which operations reached their 2xx answers.

Webhook requests go to a webhook whose id is never handed out, so no fuzzed PATCH can make it
wait for a reply (which answers 504 when no workflow listens). Schemathesis also reuses tokens
from earlier answers, so a request may reach a webhook the fuzzer created with a 5xx
`responseCode` of its choosing: such an answer is the webhook doing what it was told, and
`filter_failure` drops it (only when the status is that webhook's own `responseCode`).
"""

import atexit
import collections
import os
import random
import threading

import requests
import schemathesis

BASE = os.environ["FLOWD_URL"].rstrip("/")
TOKEN = os.environ["FLOWD_OWNER_TOKEN"]
# How often a path parameter keeps its generated value (exercising the 404 answers).
KEEP_GENERATED = 0.1
_random = random.Random(int(os.environ.get("FLOWD_FUZZ_SEED", "0")))
_session = requests.Session()
_session.headers["Authorization"] = f"Bearer {TOKEN}"

GRAPH = {
    "triggers": [{"type": "virtualButton", "key": "press", "outputIds": [["debug"]]}],
    "nodes": [{"id": "debug", "type": "DebugNode", "config": {}, "outputIds": [[]]}],
}


def _create(path, body, expected=201):
    response = _session.post(BASE + path, json=body, timeout=30)
    if response.status_code != expected:
        raise RuntimeError(
            f"fuzz-api setup: POST {path} answered {response.status_code}: {response.text[:500]}"
        )
    return response.json()


def _application():
    return _create("/applications", {"name": "fuzz"})["id"]


def _flow(app):
    return _create(f"/applications/{app}/flows", {"name": "fuzz", **GRAPH})["id"]


def _version(app, flow, name):
    return _create(f"/applications/{app}/flows/{flow}/versions", {"version": name, **GRAPH})["id"]


def _token(app):
    return _create(f"/applications/{app}/tokens", {"name": "fuzz", "scope": ["all.Application"]})["id"]


def _integration(app):
    # Disabled: even inside the fuzz run's own network namespace, a connection loop is noise.
    body = {
        "name": "fuzz",
        "integrationType": "mqtt",
        "enabled": False,
        "mqttConfig": {"host": "127.0.0.1", "port": 1, "protocol": "mqtt"},
    }
    return _create(f"/applications/{app}/integrations", body)["id"]


def _webhook(app):
    return _create(f"/applications/{app}/webhooks", {"name": "fuzz"})


APP = _application()
FLOW = _flow(APP)
VERSION_NAME = "v1"
VERSION = _version(APP, FLOW, VERSION_NAME)
SHARED = {
    "applicationId": APP,
    "flowId": FLOW,
    "flowVersionId": VERSION,
    "apiTokenId": _token(APP),
    "integrationId": _integration(APP),
    "webhookId": _webhook(APP)["id"],
    "path": "fuzz/path",
}
# A second webhook for the public URLs. Its id is never handed out by this hook, but the stateful
# phase finds it in webhook lists; any change aimed at it goes to the shared one instead, so it
# keeps the defaults (no reply to wait for, response code 200).
_URL_WEBHOOK = _webhook(APP)
SHARED["token"] = _URL_WEBHOOK["token"]
# Whatever the shared resources can be named by in a path.
PROTECTED = {value for key, value in SHARED.items() if key != "path"} | {VERSION_NAME}

APP_PATH = "/applications/{applicationId}"
FLOW_PATH = APP_PATH + "/flows/{flowId}"

# The destructive operations: the path parameter naming what goes, and how to make a stand-in.
DESTRUCTIVE = {
    ("DELETE", APP_PATH): ("applicationId", lambda: _application()),
    ("DELETE", FLOW_PATH): ("flowId", lambda: _flow(APP)),
    ("POST", FLOW_PATH + "/versions/delete"): ("flowId", lambda: _doomed_flow()),
    ("DELETE", FLOW_PATH + "/versions/{flowVersionId}"): ("flowVersionId", lambda: _doomed_version()),
    ("DELETE", APP_PATH + "/tokens/{apiTokenId}"): ("apiTokenId", lambda: _token(APP)),
    ("DELETE", APP_PATH + "/integrations/{integrationId}"): ("integrationId", lambda: _integration(APP)),
    ("DELETE", APP_PATH + "/webhooks/{webhookId}"): ("webhookId", lambda: _webhook(APP)["id"]),
}


def _doomed_flow():
    flow = _flow(APP)
    _version(APP, flow, "doomed")
    return flow


def _doomed_version():
    return _version(APP, FLOW, f"doomed-{_random.getrandbits(32):08x}")


@schemathesis.hook
def before_call(context, case, kwargs):
    method = case.operation.method.upper()
    path = case.operation.path
    if path == FLOW_PATH + "/debug" or not case.path_parameters:
        return
    params = dict(case.path_parameters)
    if _random.random() >= KEEP_GENERATED:
        params.update({name: SHARED[name] for name in params if name in SHARED})
        if "flowVersionId" in params and _random.random() < 0.5:
            # Versions are addressed by name as well as by id.
            params["flowVersionId"] = VERSION_NAME
    if params.get("webhookId") == _URL_WEBHOOK["id"]:
        params["webhookId"] = SHARED["webhookId"]
    # Ids may also come from earlier answers (the stateful phase), so check what is aimed at.
    target = DESTRUCTIVE.get((method, path))
    if target and params.get(target[0]) in PROTECTED:
        # The stand-ins live in the shared application (and a version in the shared flow).
        if target[0] != "applicationId":
            params["applicationId"] = APP
        if target[0] == "flowVersionId":
            params["flowId"] = FLOW
        params[target[0]] = target[1]()
    case.path_parameters = params
    _steer_body(method, path, case)


def _steer_body(method, path, case):
    """Half the time, turn a generated body into one flowd can accept, so the handler's success
    path runs too: random keys never name the fixture's button, and random integrations are
    almost never MQTT (the only type flowd connects; the broker is a closed local port)."""
    if not isinstance(case.body, dict) or _random.random() < 0.5:
        return
    if method == "POST" and path == FLOW_PATH + "/virtualButton":
        case.body = {**case.body, "key": "press"}
        case.body.pop("deploymentId", None)
        case.body.pop("flowVersion", None)
    elif method == "POST" and path == APP_PATH + "/integrations":
        mqtt = {"host": "127.0.0.1", "port": 1, "protocol": "mqtt"}
        case.body = {"name": "fuzz", "integrationType": "mqtt", "mqttConfig": mqtt,
                     **{k: v for k, v in case.body.items() if k in ("name", "enabled", "topics")}}


WEBHOOK_URLS = ("/webhooks/{token}", "/webhooks/{token}/{path}")
SUCCESS = {"success": True}


def _webhook_by_token(token):
    """The stored webhook a public URL names, searched in every application (the fuzzer may
    have made it in one of its own)."""
    apps = _session.get(BASE + "/applications", params={"perPage": 1000}, timeout=30).json()
    for app in apps.get("items", []):
        hooks = _session.get(
            f"{BASE}/applications/{app['id']}/webhooks", params={"perPage": 1000}, timeout=30
        ).json()
        for hook in hooks.get("items", []):
            if hook.get("token") == token:
                return hook
    return None


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Keeps every failure except a webhook's configured answer: `{"success":true}` with the
    5xx `responseCode` its (fuzzed) settings chose."""
    if failure.code != "ST101" or case.operation.path not in WEBHOOK_URLS:
        return True
    try:
        body = response.json()
    except ValueError:
        return True
    if body != SUCCESS:
        return True
    hook = _webhook_by_token(case.path_parameters.get("token"))
    return hook is None or hook.get("responseCode") != response.status_code


_statuses = collections.defaultdict(collections.Counter)
_statuses_lock = threading.Lock()


@schemathesis.hook
def after_call(context, case, response):
    with _statuses_lock:
        _statuses[f"{case.operation.method.upper()} {case.operation.path}"][response.status_code] += 1


@atexit.register
def _write_statuses():
    reports = os.environ.get("FLOWD_FUZZ_REPORTS")
    if not reports or not _statuses:
        return
    with _statuses_lock, open(os.path.join(reports, "statuses.txt"), "w") as out:
        for operation in sorted(_statuses):
            counts = " ".join(f"{code}:{n}" for code, n in sorted(_statuses[operation].items()))
            out.write(f"{operation}  {counts}\n")
