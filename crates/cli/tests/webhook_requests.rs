//! Requests to the public webhook URLs with a real HTTP client: what a run sees of the request,
//! the immediate answer, wait-for-reply (a reply, the 504s), versions by header, basic
//! authentication, size and rate limits, and the spec's example 03.

mod common;

use common::*;
use flowd_model::schema::SchemaName;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

struct Hook {
    id: String,
    url: String,
}

async fn webhook(server: &Server, app: &str, body: Value) -> Hook {
    let doc = server
        .ok(
            Method::POST,
            &format!("/applications/{app}/webhooks"),
            Some(&body),
            201,
            SchemaName::Webhook,
        )
        .await;
    Hook {
        id: doc["id"].as_str().unwrap().to_owned(),
        url: format!(
            "{}/webhooks/{}",
            server.base,
            doc["token"].as_str().unwrap()
        ),
    }
}

/// A flow whose webhook trigger stores the run's `data` under `seen`.
fn recorder(hook: &Hook) -> Value {
    json!({
        "name": "recorder",
        "triggers": [{"type": "webhook", "key": hook.id, "config": {}, "outputIds": [["keep"]]}],
        "nodes": [{"id": "keep", "type": "StoreValueNode",
                   "config": {"keyName": "seen", "valueType": "path", "valuePath": "data"}, "outputIds": [[]]}]
    })
}

/// Polls a flow's storage until `key` is there.
async fn stored(server: &Server, flow_path: &str, key: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let storage = server.storage(flow_path).await;
        if let Some(value) = storage.get(key) {
            return value.clone();
        }
        assert!(Instant::now() < deadline, "{key} never stored: {storage}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

async fn clear(server: &Server, flow_path: &str) {
    server
        .ok(
            Method::DELETE,
            &format!("{flow_path}/storage"),
            None,
            200,
            SchemaName::Success,
        )
        .await;
}

fn path_of(app: &str, flow: &Value) -> String {
    format!("/applications/{app}/flows/{}", flow["id"].as_str().unwrap())
}

#[tokio::test]
async fn a_request_becomes_the_runs_data() {
    let server = Server::start().await;
    let app = server.create_application("hooks").await;
    let hook = webhook(&server, &app, json!({"name": "in", "responseCode": 202})).await;
    let flow = server.create_flow(&app, &recorder(&hook)).await;
    let flow_path = path_of(&app, &flow);
    let client = reqwest::Client::new();

    let answer = client
        .post(format!("{}/sensors/7?unit=c&tag=a&tag=b", hook.url))
        .header("X-Custom", "yes")
        .header("Cookie", "session=secret")
        .json(&json!({"temp": 21.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    assert_eq!(
        answer.json::<Value>().await.unwrap(),
        json!({"success": true})
    );
    let data = stored(&server, &flow_path, "seen").await;
    assert_eq!(data["path"], "/sensors/7");
    assert_eq!(data["method"], "post");
    assert_eq!(data["query"], json!({"unit": "c", "tag": ["a", "b"]}));
    assert_eq!(data["body"], json!({"temp": 21.5}));
    assert_eq!(data["headers"]["x-custom"], "yes");
    assert!(data["headers"].get("cookie").is_none(), "{data}");
    assert!(data.get("replyId").is_none());

    // Forms, text, an empty body and raw bytes.
    let cases: Vec<(reqwest::RequestBuilder, Value)> = vec![
        (
            client
                .put(&hook.url)
                .form(&[("a", "1"), ("b", "x y"), ("a", "2")]),
            json!({"a": ["1", "2"], "b": "x y"}),
        ),
        (
            client
                .post(&hook.url)
                .header("Content-Type", "text/plain")
                .body("hello"),
            json!("hello"),
        ),
        (client.delete(&hook.url), Value::Null),
        (
            client
                .post(&hook.url)
                .header("Content-Type", "application/json")
                .body("{not json"),
            json!("{not json"),
        ),
        (
            client.post(&hook.url).multipart(
                reqwest::multipart::Form::new().text("note", "first").part(
                    "file",
                    reqwest::multipart::Part::bytes(b"a,b\n1,2".to_vec())
                        .file_name("readings.csv")
                        .mime_str("text/csv")
                        .unwrap(),
                ),
            ),
            json!({"note": "first", "file": "a,b\n1,2"}),
        ),
    ];
    for (request, expected) in cases {
        clear(&server, &flow_path).await;
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 202);
        assert_eq!(stored(&server, &flow_path, "seen").await["body"], expected);
    }

    // Binary bodies are cast as the webhook says; files can be annotated.
    server
        .ok(
            Method::PATCH,
            &format!("/applications/{app}/webhooks/{}", hook.id),
            Some(&json!({"castBuffersAs": "base64", "annotateMultipart": true})),
            200,
            SchemaName::Webhook,
        )
        .await;
    clear(&server, &flow_path).await;
    client
        .post(&hook.url)
        .header("Content-Type", "application/octet-stream")
        .body(vec![0u8, 1, 254, 255])
        .send()
        .await
        .unwrap();
    assert_eq!(
        stored(&server, &flow_path, "seen").await["body"],
        "AAH+/w=="
    );
    clear(&server, &flow_path).await;
    client
        .post(&hook.url)
        .multipart(reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(vec![1u8, 2]).file_name("b.bin"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        stored(&server, &flow_path, "seen").await["body"]["file"],
        json!({"filename": "b.bin", "contentType": "application/octet-stream", "data": "AQI="})
    );
}

/// A flow that replies `{{data.body.code}}` with the request's body echoed under `echo`.
fn replier(hook: &Hook, tag: &str) -> Value {
    json!({
        "name": format!("replier {tag}"),
        "triggers": [{"type": "webhook", "key": hook.id, "config": {}, "outputIds": [["shape"]]}],
        "nodes": [
            {"id": "shape", "type": "MutateNode", "config": {"rules": [
                {"type": "set", "valueTemplate": "{{jsonEncode data.body}}", "valueTemplateType": "json", "destination": "working.reply.echo"},
                {"type": "set", "valueTemplate": tag, "destination": "working.reply.by"}]},
             "outputIds": [["reply"]]},
            {"id": "reply", "type": "WebhookReplyNode",
             "config": {"replyIdPath": "data.replyId", "responseCodeTemplate": "{{data.body.code}}",
                        "bodyTemplateType": "path", "bodyTemplate": "working.reply",
                        "headerInfo": [{"keyTemplate": "Content-Type", "valueTemplate": "application/json"},
                                       {"keyTemplate": "X-Replied-By", "valueTemplate": tag}]},
             "outputIds": [[]]}
        ]
    })
}

#[tokio::test]
async fn waiting_webhooks_answer_with_the_reply_or_a_504() {
    let server = Server::start_with_config("webhook-reply-timeout-secs = 1\n").await;
    let app = server.create_application("replies").await;
    let hook = webhook(&server, &app, json!({"name": "ask", "waitForReply": true})).await;
    let client = reqwest::Client::new();

    // Nobody listens: 504 at once rather than after the wait.
    let began = Instant::now();
    let answer = client
        .post(&hook.url)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 504);
    assert_eq!(
        answer.json::<Value>().await.unwrap()["type"],
        "GatewayTimeout"
    );
    assert!(began.elapsed() < Duration::from_millis(900));

    server.create_flow(&app, &replier(&hook, "develop")).await;
    for code in [201, 404] {
        let answer = client
            .post(&hook.url)
            .json(&json!({"code": code, "n": 5}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), code);
        assert_eq!(answer.headers()["x-replied-by"], "develop");
        assert_eq!(answer.headers()["content-type"], "application/json");
        assert_eq!(
            answer.json::<Value>().await.unwrap(),
            json!({"echo": {"code": code, "n": 5}, "by": "develop"})
        );
    }

    // A listening flow that never replies: 504 after the (1 s) wait, and nothing stays parked.
    let silent = webhook(
        &server,
        &app,
        json!({"name": "silent", "waitForReply": true}),
    )
    .await;
    server.create_flow(&app, &recorder(&silent)).await;
    let began = Instant::now();
    let answer = client.get(&silent.url).send().await.unwrap();
    assert_eq!(answer.status(), 504);
    assert!(began.elapsed() >= Duration::from_millis(900));
    assert!(answer.text().await.unwrap().contains("within 1 s"));
}

#[tokio::test]
async fn x_flow_version_picks_the_version_that_runs() {
    let server = Server::start().await;
    let app = server.create_application("versions").await;
    let hook = webhook(&server, &app, json!({"name": "v", "waitForReply": true})).await;
    let v1 = replier(&hook, "v1");
    let flow = server.create_flow(&app, &v1).await;
    let flow_path = path_of(&app, &flow);
    // A version is a snapshot of the graph its body carries.
    let version = server
        .ok(
            Method::POST,
            &format!("{flow_path}/versions"),
            Some(&json!({"version": "v1", "triggers": flow["triggers"], "nodes": v1["nodes"]})),
            201,
            SchemaName::FlowVersion,
        )
        .await;
    // Develop moves on; v1 is the default version (the live one).
    let develop = replier(&hook, "develop");
    server
        .ok(
            Method::PATCH,
            &flow_path,
            Some(&json!({"nodes": develop["nodes"], "defaultVersionId": version["id"]})),
            200,
            SchemaName::Flow,
        )
        .await;
    let client = reqwest::Client::new();
    let by = |version: Option<&'static str>| {
        let mut request = client.post(&hook.url).json(&json!({"code": 200}));
        if let Some(version) = version {
            request = request.header("X-Flow-Version", version);
        }
        async move {
            let answer = request.send().await.unwrap();
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let live = by(None).await;
    assert_eq!(live.1["by"], "v1", "{live:?}");
    assert_eq!(by(Some("develop")).await.1["by"], "develop");
    assert_eq!(by(Some("v1")).await.1["by"], "v1");
    // A version no flow has: nothing runs, so nothing replies.
    assert_eq!(by(Some("v9")).await.0, 504);
}

#[tokio::test]
async fn access_is_checked_and_limits_apply() {
    let server = Server::start_with_config("trigger-rate-limit = \"3/60\"\n").await;
    let app = server.create_application("guarded").await;
    let hook = webhook(
        &server,
        &app,
        json!({"name": "guarded", "basicAuthUsername": "plant", "basicAuthPassword": "s3cret"}),
    )
    .await;
    server.create_flow(&app, &recorder(&hook)).await;
    let client = reqwest::Client::new();

    let unknown = client
        .post(format!("{}/webhooks/not-a-token", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert_error(
        (unknown.status(), unknown.json().await.unwrap()),
        404,
        "NotFound",
        "Webhook",
    );

    for credentials in [None, Some(("plant", "wrong")), Some(("other", "s3cret"))] {
        let mut request = client.post(&hook.url);
        if let Some((user, password)) = credentials {
            request = request.basic_auth(user, Some(password));
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 401, "{credentials:?}");
        assert_eq!(
            answer.headers()["www-authenticate"],
            "Basic realm=\"webhook\""
        );
    }
    let authorized = || client.post(&hook.url).basic_auth("plant", Some("s3cret"));
    assert_eq!(authorized().send().await.unwrap().status(), 200);

    // Over 256 KB: 413, read to the end so the client sees the answer.
    let answer = authorized()
        .header("Content-Type", "text/plain")
        .body("x".repeat(256 * 1024 + 1))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 413);
    assert_eq!(
        answer.json::<Value>().await.unwrap()["type"],
        "PayloadTooLarge"
    );

    // The rate limit (3 per minute here): the 413 did not count, two more pass, then 429.
    for _ in 0..2 {
        assert_eq!(authorized().send().await.unwrap().status(), 200);
    }
    let limited = authorized().send().await.unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.json::<Value>().await.unwrap()["type"], "RateLimit");

    // Disabled: 403.
    server
        .ok(
            Method::PATCH,
            &format!("/applications/{app}/webhooks/{}", hook.id),
            Some(&json!({"enabled": false})),
            200,
            SchemaName::Webhook,
        )
        .await;
    assert_eq!(authorized().send().await.unwrap().status(), 403);
}
