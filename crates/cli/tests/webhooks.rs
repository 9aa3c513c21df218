//! Webhooks end to end: the resource (CRUD, lists, the server-set token and defaults), what is
//! refused because flowd cannot honour it yet, 404s, and a restart keeping everything.

mod common;

use common::*;
use flowd_model::schema::SchemaName;
use reqwest::Method;
use serde_json::{json, Value};

const UNKNOWN_ID: &str = "0123456789abcdef01234567";

fn names(list: &Value) -> Vec<&str> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect()
}

fn assert_url_safe_token(token: &Value) {
    let token = token.as_str().expect("token is a string");
    // 32 random bytes, base64url without padding.
    assert_eq!(token.len(), 43, "{token}");
    assert!(
        token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "{token}"
    );
}

async fn list(server: &Server, path: &str) -> Value {
    server
        .ok(Method::GET, path, None, 200, SchemaName::Webhooks)
        .await
}

#[tokio::test]
async fn webhooks_are_managed_and_keep_their_token() {
    let temp = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(temp.path(), Some(OWNER_TOKEN)).await;
    let app = server.create_application("webhooks").await;
    let collection = format!("/applications/{app}/webhooks");

    // A name is all a webhook needs; the server fills in the rest.
    let plain = server
        .ok(
            Method::POST,
            &collection,
            Some(&json!({"name": "readings"})),
            201,
            SchemaName::Webhook,
        )
        .await;
    let id = plain["id"].as_str().unwrap().to_owned();
    assert_eq!(plain["webhookId"], id);
    assert_eq!(plain["applicationId"], app);
    assert_eq!(plain["responseCode"], 200);
    assert_eq!(plain["verificationType"], "none");
    assert_eq!(plain["waitForReply"], false);
    assert_eq!(plain["isWebsocket"], false);
    assert_eq!(plain["enabled"], true);
    assert_eq!(plain["creationDate"], plain["lastUpdated"]);
    assert_url_safe_token(&plain["token"]);
    assert_eq!(plain["_type"], "webhook");
    let path = format!("{collection}/{id}");
    assert_eq!(plain["_links"]["self"]["href"], path);

    // Every setting flowd honours, given at once.
    let full = json!({
        "name": "alarms",
        "description": "from the plant",
        "responseCode": 202,
        "verificationType": "none",
        "waitForReply": true,
        "basicAuthUsername": "plant",
        "basicAuthPassword": "s3cret",
        "isWebsocket": false,
        "castBuffersAs": "base64",
        "annotateMultipart": true,
        "enabled": false,
    });
    let alarms = server
        .ok(
            Method::POST,
            &collection,
            Some(&full),
            201,
            SchemaName::Webhook,
        )
        .await;
    for (field, value) in full.as_object().unwrap() {
        assert_eq!(&alarms[field], value, "{field}");
    }
    assert_url_safe_token(&alarms["token"]);
    assert_ne!(alarms["token"], plain["token"], "every webhook has its own");
    let alarms_path = format!("{collection}/{}", alarms["id"].as_str().unwrap());

    let fetched = server
        .ok(Method::GET, &path, None, 200, SchemaName::Webhook)
        .await;
    assert_eq!(fetched, plain);
    let bare = server
        .ok(
            Method::GET,
            &format!("{path}?_links=false"),
            None,
            200,
            SchemaName::Webhook,
        )
        .await;
    assert!(bare.get("_links").is_none(), "{bare}");

    // Changes keep the token (the public URL never changes) and the creation date.
    let renamed = server
        .ok(
            Method::PATCH,
            &path,
            Some(&json!({"name": "z readings", "waitForReply": true, "responseCode": 204})),
            200,
            SchemaName::Webhook,
        )
        .await;
    assert_eq!(renamed["name"], "z readings");
    assert_eq!(renamed["waitForReply"], true);
    assert_eq!(renamed["responseCode"], 204);
    assert_eq!(renamed["token"], plain["token"]);
    assert_eq!(renamed["creationDate"], plain["creationDate"]);
    assert!(renamed["lastUpdated"].as_str() >= plain["lastUpdated"].as_str());
    // Basic authentication goes off when both halves are emptied together.
    let open = server
        .ok(
            Method::PATCH,
            &alarms_path,
            Some(&json!({"basicAuthUsername": "", "basicAuthPassword": ""})),
            200,
            SchemaName::Webhook,
        )
        .await;
    assert_eq!(open["token"], alarms["token"]);
    assert_eq!(open["basicAuthUsername"], "");

    // Lists: sorted, filtered by name (globs), paged.
    let by_name = list(&server, &collection).await;
    assert_eq!(names(&by_name), ["alarms", "z readings"]);
    assert_eq!(by_name["totalCount"], 2);
    assert_eq!(by_name["applicationId"], app);
    assert_eq!(by_name["_type"], "webhooks");
    assert_eq!(by_name["items"][1]["token"], plain["token"]);
    let desc = list(
        &server,
        &format!("{collection}?sortField=name&sortDirection=desc"),
    )
    .await;
    assert_eq!(names(&desc), ["z readings", "alarms"]);
    let oldest_first = list(&server, &format!("{collection}?sortField=creationDate")).await;
    assert_eq!(names(&oldest_first), ["z readings", "alarms"]);
    let by_update = list(
        &server,
        &format!("{collection}?sortField=lastUpdated&sortDirection=desc"),
    )
    .await;
    assert_eq!(names(&by_update), ["alarms", "z readings"]);
    let by_id = list(&server, &format!("{collection}?sortField=id")).await;
    assert_eq!(names(&by_id), ["z readings", "alarms"]);
    let globbed = list(&server, &format!("{collection}?filterField=name&filter=z*")).await;
    assert_eq!(names(&globbed), ["z readings"]);
    assert_eq!(globbed["count"], 1);
    assert_eq!(globbed["filter"], "z*");
    let second_page = list(&server, &format!("{collection}?perPage=1&page=1")).await;
    assert_eq!(names(&second_page), ["z readings"]);
    assert_eq!(second_page["count"], 1);
    assert_eq!(second_page["totalCount"], 2);
    assert_eq!(second_page["perPage"], 1);
    assert_eq!(second_page["page"], 1);
    for (query, field) in [
        ("sortField=token", "sortField"),
        ("sortField=integrationType", "sortField"),
        ("filterField=token&filter=x", "filterField"),
        ("sortDirection=up", "sortDirection"),
        ("perPage=0", "perPage"),
    ] {
        assert_error(
            server
                .call(
                    Method::GET,
                    &format!("{collection}?{query}"),
                    Some(OWNER_TOKEN),
                    None,
                )
                .await,
            400,
            "Validation",
            field,
        );
    }
    // Another application sees none of them.
    let other = server.create_application("other").await;
    let empty = list(&server, &format!("/applications/{other}/webhooks")).await;
    assert_eq!(empty["totalCount"], 0);

    // After a restart everything is as it was.
    let before = list(&server, &collection).await;
    let (exit, _) = server.stop();
    assert!(exit.success());
    let mut server = Server::start_in(temp.path(), Some(OWNER_TOKEN)).await;
    assert_eq!(list(&server, &collection).await, before);

    // Deleting: `includeWorkflows=true` is refused (not done yet) and changes nothing.
    assert_error(
        server
            .call(
                Method::DELETE,
                &format!("{path}?includeWorkflows=true"),
                Some(OWNER_TOKEN),
                None,
            )
            .await,
        400,
        "Validation",
        "includeWorkflows",
    );
    assert_error(
        server
            .call(
                Method::DELETE,
                &format!("{path}?includeWorkflows=maybe"),
                Some(OWNER_TOKEN),
                None,
            )
            .await,
        400,
        "Validation",
        "includeWorkflows",
    );
    server
        .ok(Method::GET, &path, None, 200, SchemaName::Webhook)
        .await;
    let deleted = server
        .ok(
            Method::DELETE,
            &format!("{path}?includeWorkflows=false"),
            None,
            200,
            SchemaName::Success,
        )
        .await;
    assert_eq!(deleted, json!({"success": true}));
    for method in [Method::GET, Method::DELETE] {
        assert_error(
            server.call(method, &path, Some(OWNER_TOKEN), None).await,
            404,
            "NotFound",
            "Webhook",
        );
    }
    assert_error(
        server
            .call(
                Method::PATCH,
                &path,
                Some(OWNER_TOKEN),
                Some(&json!({"name": "back"})),
            )
            .await,
        404,
        "NotFound",
        "Webhook",
    );
    assert_eq!(names(&list(&server, &collection).await), ["alarms"]);

    // Deleting the application takes its webhooks with it.
    server
        .ok(
            Method::DELETE,
            &format!("/applications/{app}"),
            None,
            200,
            SchemaName::Success,
        )
        .await;
    assert_error(
        server
            .call(Method::GET, &alarms_path, Some(OWNER_TOKEN), None)
            .await,
        404,
        "NotFound",
        "Application",
    );
    let (exit, _) = server.stop();
    assert!(exit.success());
}

#[tokio::test]
async fn what_flowd_cannot_honour_is_refused_naming_the_field() {
    let server = Server::start().await;
    let app = server.create_application("refusals").await;
    let collection = format!("/applications/{app}/webhooks");
    let kept = server
        .ok(
            Method::POST,
            &collection,
            Some(&json!({"name": "kept", "basicAuthUsername": "u", "basicAuthPassword": "p"})),
            201,
            SchemaName::Webhook,
        )
        .await;
    let path = format!("{collection}/{}", kept["id"].as_str().unwrap());

    let refused: Vec<(Value, &str)> = vec![
        (json!({"verificationType": "facebook"}), "verificationType"),
        (json!({"verificationType": "fitbit"}), "verificationType"),
        (json!({"verificationType": "twilio"}), "verificationType"),
        (json!({"verificationType": "alexa"}), "verificationType"),
        (json!({"isWebsocket": true}), "isWebsocket"),
        (json!({"responseCode": 100}), "responseCode"),
        (json!({"responseCode": 199}), "responseCode"),
    ];
    for (fields, needle) in &refused {
        let mut body = fields.clone();
        body["name"] = json!("refused");
        assert_error(
            server
                .call(Method::POST, &collection, Some(OWNER_TOKEN), Some(&body))
                .await,
            400,
            "Validation",
            needle,
        );
        // The same on a PATCH, and along with fine changes: nothing of it is saved.
        let mut patch = fields.clone();
        patch["name"] = json!("renamed");
        assert_error(
            server
                .call(Method::PATCH, &path, Some(OWNER_TOKEN), Some(&patch))
                .await,
            400,
            "Validation",
            needle,
        );
    }

    // Basic authentication needs both a username and a password; the message names the missing
    // one.
    let halves: Vec<(Value, &str)> = vec![
        (json!({"basicAuthUsername": "u"}), "basicAuthPassword"),
        (
            json!({"basicAuthUsername": "u", "basicAuthPassword": ""}),
            "basicAuthPassword",
        ),
        (json!({"basicAuthPassword": "p"}), "basicAuthUsername"),
    ];
    for (fields, needle) in &halves {
        let mut body = fields.clone();
        body["name"] = json!("half");
        assert_error(
            server
                .call(Method::POST, &collection, Some(OWNER_TOKEN), Some(&body))
                .await,
            400,
            "Validation",
            needle,
        );
    }
    for (patch, needle) in [
        (json!({"basicAuthPassword": ""}), "basicAuthPassword"),
        (json!({"basicAuthUsername": ""}), "basicAuthUsername"),
    ] {
        assert_error(
            server
                .call(Method::PATCH, &path, Some(OWNER_TOKEN), Some(&patch))
                .await,
            400,
            "Validation",
            needle,
        );
    }

    // Fields the server sets are not the client's to send.
    for field in ["token", "id", "webhookId", "applicationId", "creationDate"] {
        let mut body = json!({"name": "x"});
        body[field] = json!(UNKNOWN_ID);
        assert_error(
            server
                .call(Method::POST, &collection, Some(OWNER_TOKEN), Some(&body))
                .await,
            400,
            "Validation",
            field,
        );
        let patch = json!({ field: UNKNOWN_ID });
        assert_error(
            server
                .call(Method::PATCH, &path, Some(OWNER_TOKEN), Some(&patch))
                .await,
            400,
            "Validation",
            field,
        );
    }

    // Nothing was created, and the one webhook is as it was.
    let listed = server
        .ok(Method::GET, &collection, None, 200, SchemaName::Webhooks)
        .await;
    assert_eq!(names(&listed), ["kept"]);
    let now = server
        .ok(Method::GET, &path, None, 200, SchemaName::Webhook)
        .await;
    assert_eq!(now, kept);
}

#[tokio::test]
async fn unknown_webhooks_and_applications_are_404() {
    let server = Server::start().await;
    let app = server.create_application("a").await;
    let other = server.create_application("b").await;
    let hook = server
        .ok(
            Method::POST,
            &format!("/applications/{app}/webhooks"),
            Some(&json!({"name": "w"})),
            201,
            SchemaName::Webhook,
        )
        .await;
    let hook_id = hook["id"].as_str().unwrap();
    for bad in [UNKNOWN_ID, "not-an-id", "0123456789abcdef0123456"] {
        for (method, body) in [
            (Method::GET, None),
            (Method::PATCH, Some(json!({"name": "x"}))),
            (Method::DELETE, None),
        ] {
            assert_error(
                server
                    .call(
                        method.clone(),
                        &format!("/applications/{app}/webhooks/{bad}"),
                        Some(OWNER_TOKEN),
                        body.as_ref(),
                    )
                    .await,
                404,
                "NotFound",
                "Webhook",
            );
            assert_error(
                server
                    .call(
                        method,
                        &format!("/applications/{bad}/webhooks/{hook_id}"),
                        Some(OWNER_TOKEN),
                        body.as_ref(),
                    )
                    .await,
                404,
                "NotFound",
                "Application",
            );
        }
        for (method, body) in [
            (Method::GET, None),
            (Method::POST, Some(json!({"name": "x"}))),
        ] {
            assert_error(
                server
                    .call(
                        method,
                        &format!("/applications/{bad}/webhooks"),
                        Some(OWNER_TOKEN),
                        body.as_ref(),
                    )
                    .await,
                404,
                "NotFound",
                "Application",
            );
        }
    }
    // A webhook is found only under its own application.
    assert_error(
        server
            .call(
                Method::GET,
                &format!("/applications/{other}/webhooks/{hook_id}"),
                Some(OWNER_TOKEN),
                None,
            )
            .await,
        404,
        "NotFound",
        "Webhook",
    );
}
