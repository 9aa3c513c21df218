//! Behaviour of the [`Store`] trait, checked through `dyn Store` only.
//!
//! Every check is an `async fn` taking `&dyn Store` (or, for the few that need more, an
//! `Arc<dyn Store>` or an opener), and every backend runs them all: the modules at the bottom
//! (`sqlite`, `postgres`) each say how to make a fresh store and call `on_fresh_store!`, which
//! makes one test per check. A difference between backends is a failing test, not a skip.

use flowd_model::{id::new_id, time::now_iso};
use flowd_store::sqlite::SqliteStore;
use flowd_store::{
    Column, ListQuery, Page, ResourceKind, RunError, RunFilter, RunLogEntry, RunRecord, RunSummary,
    RunVersion, SortDirection, StatsBucket, StorageCaps, StorageChange, StorageMetadata,
    StorageSpace, StorageUpdate, StorageWrite, Store, StoreError, StoredRunError, TokenRecord,
};
use serde_json::{json, Map, Value};
use std::future::Future;
use std::sync::Arc;

// ---------------------------------------------------------------------------------------------
// Documents and queries
// ---------------------------------------------------------------------------------------------

const BIG: StorageCaps = StorageCaps {
    max_keys: 10_000,
    max_bytes: 10_000_000,
};

/// An id with a chosen order (ids are 24 hex characters).
fn fixed_id(n: u32) -> String {
    format!("{n:024x}")
}

/// `2020-01-<day>T00:00:00.000Z`.
fn date(day: u32) -> String {
    format!("2020-01-{day:02}T00:00:00.000Z")
}

fn application(name: &str) -> Value {
    let now = now_iso();
    json!({
        "id": new_id(),
        "name": name,
        "description": "",
        "creationDate": now,
        "lastUpdated": now,
        "ownerId": "000000000000000000000001",
        "ownerType": "user",
    })
}

fn flow(application_id: &str, name: &str, flow_class: &str) -> Value {
    let now = now_iso();
    json!({
        "id": new_id(),
        "applicationId": application_id,
        "name": name,
        "flowClass": flow_class,
        "enabled": true,
        "triggers": [],
        "nodes": [],
        "globals": [],
        "creationDate": now,
        "lastUpdated": now,
    })
}

fn version(flow: &Value, name: &str) -> Value {
    let now = now_iso();
    json!({
        "id": new_id(),
        "applicationId": flow["applicationId"],
        "flowId": flow["id"],
        "version": name,
        "notes": format!("notes of {name}"),
        "enabled": true,
        "triggers": [],
        "nodes": [],
        "globals": [],
        "creationDate": now,
        "lastUpdated": now,
    })
}

/// A token as Losant shapes its `apiToken` document: the owner is `ownerId`/`ownerType`; there
/// is no `applicationId` field, so the store must take the application from the record.
fn token(application_id: Option<&str>, name: &str, hash: &str) -> TokenRecord {
    let id = new_id();
    let now = now_iso();
    let (owner_id, owner_type) = match application_id {
        Some(app) => (app.to_owned(), "application"),
        None => ("000000000000000000000001".to_owned(), "user"),
    };
    TokenRecord {
        id: id.clone(),
        application_id: application_id.map(str::to_owned),
        token_hash: hash.to_owned(),
        doc: json!({
            "id": id,
            "apiTokenId": id,
            "ownerId": owner_id,
            "ownerType": owner_type,
            "name": name,
            "scope": ["all.Application"],
            "status": "active",
            "expirationDate": null,
            "creationDate": now,
            "lastUpdated": now,
        }),
    }
}

fn query(sort: Column, direction: SortDirection) -> ListQuery {
    ListQuery {
        sort,
        direction,
        page: 0,
        per_page: 1000,
        filter: None,
        flow_class: None,
    }
}

fn all() -> ListQuery {
    query(Column::Name, SortDirection::Asc)
}

fn filtered(column: Column, glob: &str) -> ListQuery {
    ListQuery {
        filter: Some((column, glob.to_owned())),
        ..all()
    }
}

fn field(page: &Page, name: &str) -> Vec<String> {
    page.items
        .iter()
        .map(|doc| doc[name].as_str().expect("string field").to_owned())
        .collect()
}

fn names(page: &Page) -> Vec<String> {
    field(page, "name")
}

fn ids(page: &Page) -> Vec<String> {
    field(page, "id")
}

fn id(doc: &Value) -> &str {
    doc["id"].as_str().expect("document id")
}

fn sorted(mut values: Vec<String>) -> Vec<String> {
    values.sort();
    values
}

async fn set(store: &dyn Store, flow_id: &str, key: &str, value: &Value, caps: StorageCaps) {
    store
        .storage_set(flow_id, key, &value.to_string(), caps)
        .await
        .unwrap_or_else(|e| panic!("storage_set {key}: {e}"));
}

/// An application with one flow, for tests that need somewhere to put things.
async fn app_with_flow(store: &dyn Store) -> (Value, Value) {
    let app = application("Fixture");
    store.insert_application(&app).await.unwrap();
    let flow = flow(id(&app), "Fixture flow", "cloud");
    store.insert_flow(&flow).await.unwrap();
    (app, flow)
}

// ---------------------------------------------------------------------------------------------
// Applications
// ---------------------------------------------------------------------------------------------

async fn applications_crud(store: &dyn Store) {
    let app = application("My App");
    store.insert_application(&app).await.unwrap();
    assert_eq!(
        store.get_application(id(&app)).await.unwrap(),
        Some(app.clone())
    );
    assert_eq!(store.get_application(&new_id()).await.unwrap(), None);

    // The same id twice is a uniqueness violation.
    let err = store.insert_application(&app).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");

    let mut changed = app.clone();
    changed["name"] = json!("Renamed");
    changed["description"] = json!("now with a description");
    changed["lastUpdated"] = json!(now_iso());
    assert!(store.update_application(&changed).await.unwrap());
    assert_eq!(
        store.get_application(id(&app)).await.unwrap(),
        Some(changed.clone())
    );
    // The copied name column follows the document.
    assert_eq!(
        names(
            &store
                .list_applications(&filtered(Column::Name, "renamed"))
                .await
                .unwrap()
        ),
        ["Renamed"]
    );
    assert_eq!(
        store
            .list_applications(&filtered(Column::Name, "My App"))
            .await
            .unwrap()
            .total_count,
        0
    );

    let missing = application("Ghost");
    assert!(!store.update_application(&missing).await.unwrap());
    assert_eq!(store.get_application(id(&missing)).await.unwrap(), None);

    let other = application("Other");
    store.insert_application(&other).await.unwrap();
    let page = store.list_applications(&all()).await.unwrap();
    assert_eq!(page.total_count, 2);
    assert_eq!(page.items, vec![other.clone(), changed.clone()]);

    assert!(store.delete_application(id(&app)).await.unwrap());
    assert_eq!(store.get_application(id(&app)).await.unwrap(), None);
    assert!(!store.delete_application(id(&app)).await.unwrap());
    assert_eq!(
        store.get_application(id(&other)).await.unwrap(),
        Some(other.clone())
    );
    assert_eq!(
        store.list_applications(&all()).await.unwrap().total_count,
        1
    );
}

async fn applications_sorting(store: &dyn Store) {
    // Four applications whose order differs for every column.
    //              id  name       created  updated
    let rows = [
        (1, "Charlie", 3, 2),
        (2, "alpha", 4, 1),
        (3, "delta", 1, 4),
        (4, "Bravo", 2, 3),
    ];
    for (n, name, created, updated) in rows {
        let mut app = application(name);
        app["id"] = json!(fixed_id(n));
        app["creationDate"] = json!(date(created));
        app["lastUpdated"] = json!(date(updated));
        store.insert_application(&app).await.unwrap();
    }
    let expected: [(Column, [&str; 4]); 4] = [
        (Column::Id, ["Charlie", "alpha", "delta", "Bravo"]),
        // Names sort case-insensitively.
        (Column::Name, ["alpha", "Bravo", "Charlie", "delta"]),
        (Column::CreationDate, ["delta", "Bravo", "Charlie", "alpha"]),
        (Column::LastUpdated, ["alpha", "Charlie", "Bravo", "delta"]),
    ];
    for (column, ascending) in expected {
        let page = store
            .list_applications(&query(column, SortDirection::Asc))
            .await
            .unwrap();
        assert_eq!(names(&page), ascending, "{column:?} asc");
        assert_eq!(page.total_count, 4);
        let page = store
            .list_applications(&query(column, SortDirection::Desc))
            .await
            .unwrap();
        let mut descending = ascending.to_vec();
        descending.reverse();
        assert_eq!(names(&page), descending, "{column:?} desc");
    }

    // Equal sort keys fall back to the id, in the same direction, so pages are stable.
    for n in [12, 10, 11] {
        let mut app = application("same");
        app["id"] = json!(fixed_id(n));
        store.insert_application(&app).await.unwrap();
    }
    let same = ListQuery {
        filter: Some((Column::Name, "same".into())),
        ..query(Column::Name, SortDirection::Asc)
    };
    let page = store.list_applications(&same).await.unwrap();
    assert_eq!(ids(&page), [fixed_id(10), fixed_id(11), fixed_id(12)]);
    let page = store
        .list_applications(&ListQuery {
            direction: SortDirection::Desc,
            ..same
        })
        .await
        .unwrap();
    assert_eq!(ids(&page), [fixed_id(12), fixed_id(11), fixed_id(10)]);
}

async fn applications_paging(store: &dyn Store) {
    for i in 0..7 {
        store
            .insert_application(&application(&format!("app-{i}")))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    for (page_number, expected) in [(0, 3), (1, 3), (2, 1), (3, 0), (100, 0)] {
        let page = store
            .list_applications(&ListQuery {
                page: page_number,
                per_page: 3,
                ..all()
            })
            .await
            .unwrap();
        assert_eq!(page.total_count, 7, "page {page_number}");
        assert_eq!(page.items.len(), expected, "page {page_number}");
        seen.extend(names(&page));
    }
    let every: Vec<String> = (0..7).map(|i| format!("app-{i}")).collect();
    assert_eq!(seen, every);

    // The count is of the filtered collection, not of the page or of everything.
    let page = store
        .list_applications(&ListQuery {
            page: 0,
            per_page: 1,
            filter: Some((Column::Name, "app-[0-3]*".into())),
            ..all()
        })
        .await
        .unwrap();
    assert_eq!(
        page.total_count, 0,
        "brackets are literal, not a character class"
    );
    let page = store
        .list_applications(&ListQuery {
            page: 1,
            per_page: 2,
            filter: Some((Column::Name, "*-[3456]".into())),
            ..all()
        })
        .await
        .unwrap();
    assert_eq!(page.total_count, 0);
    let page = store
        .list_applications(&ListQuery {
            page: 1,
            per_page: 2,
            sort: Column::Name,
            direction: SortDirection::Desc,
            filter: Some((Column::Name, "APP-*".into())),
            flow_class: None,
        })
        .await
        .unwrap();
    assert_eq!(page.total_count, 7);
    assert_eq!(names(&page), ["app-4", "app-3"]);
}

async fn applications_filters(store: &dyn Store) {
    let all_names = [
        "Alpha Flow",
        "alpha-beta",
        "100% done",
        "100x done",
        "a_b",
        "axb",
        "beta",
        r"c:\dir",
        r"c:xdir",
    ];
    let mut by_name = Map::new();
    for name in all_names {
        let app = application(name);
        by_name.insert(name.to_owned(), json!(id(&app)));
        store.insert_application(&app).await.unwrap();
    }
    let cases: &[(&str, &[&str])] = &[
        ("*", &all_names),
        // `*` is any run of characters, including none; matching ignores ASCII case.
        ("alpha*", &["Alpha Flow", "alpha-beta"]),
        ("ALPHA*", &["Alpha Flow", "alpha-beta"]),
        ("*BETA", &["alpha-beta", "beta"]),
        ("*ph*", &["Alpha Flow", "alpha-beta"]),
        ("a*b", &["a_b", "axb"]),
        ("a*a", &["alpha-beta"]),
        // Without `*` the whole name must match.
        ("alpha", &[]),
        ("alpha flow", &["Alpha Flow"]),
        ("beta", &["beta"]),
        // SQL wildcards and the escape character are literal.
        ("100%*", &["100% done"]),
        ("100% done", &["100% done"]),
        ("%", &[]),
        ("a_b", &["a_b"]),
        ("_", &[]),
        ("___", &[]),
        (r"c:\*", &[r"c:\dir"]),
        (r"c:\dir", &[r"c:\dir"]),
        ("", &[]),
    ];
    for (glob, expected) in cases {
        let page = store
            .list_applications(&filtered(Column::Name, glob))
            .await
            .unwrap();
        let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        expected.sort_by_key(|s| s.to_lowercase());
        assert_eq!(names(&page), expected, "filter {glob:?}");
        assert_eq!(page.total_count, expected.len() as u64, "filter {glob:?}");
    }

    // Other columns filter too.
    let beta_id = by_name["beta"].as_str().unwrap();
    let page = store
        .list_applications(&filtered(Column::Id, &beta_id.to_uppercase()))
        .await
        .unwrap();
    assert_eq!(names(&page), ["beta"]);
    let page = store
        .list_applications(&filtered(Column::CreationDate, "20*Z"))
        .await
        .unwrap();
    assert_eq!(page.total_count, all_names.len() as u64);
}

/// Sorting and filtering ignore the case of ASCII letters only and otherwise compare bytes
/// (SQLite's `NOCASE` and `LIKE`); storage keys come back in byte order. A backend whose
/// database collates by locale would put `é` beside `e` and fold `É` to `é`.
async fn case_folds_ascii_letters_only(store: &dyn Store) {
    let spellings = [
        "b", "B", "a", "É", "é", "e", "E", "_x", "[x", "ä", "z", "Zz", "~",
    ];
    let mut apps = Vec::new();
    for (n, name) in spellings.iter().enumerate() {
        let mut app = application(name);
        app["id"] = json!(fixed_id(n as u32 + 1));
        store.insert_application(&app).await.unwrap();
        apps.push((fixed_id(n as u32 + 1), name.to_string()));
    }
    // Lowercased ASCII bytes, then the id.
    apps.sort_by_key(|(id, name)| (name.to_ascii_lowercase().into_bytes(), id.clone()));
    let ascending: Vec<String> = apps.iter().map(|(_, name)| name.clone()).collect();
    let page = store.list_applications(&all()).await.unwrap();
    assert_eq!(names(&page), ascending);
    let page = store
        .list_applications(&query(Column::Name, SortDirection::Desc))
        .await
        .unwrap();
    let mut descending = ascending.clone();
    descending.reverse();
    assert_eq!(names(&page), descending);

    let cases: &[(&str, &[&str])] = &[
        ("e", &["e", "E"]),
        ("é", &["é"]),
        ("É", &["É"]),
        ("Ä*", &[]),
        ("z*", &["z", "Zz"]),
    ];
    for (glob, expected) in cases {
        let page = store
            .list_applications(&filtered(Column::Name, glob))
            .await
            .unwrap();
        assert_eq!(
            sorted(names(&page)),
            sorted(expected.iter().map(|s| s.to_string()).collect()),
            "filter {glob:?}"
        );
    }

    let (_, f) = app_with_flow(store).await;
    for key in ["b", "a", "B", "é", "E", "aa", ""] {
        set(store, id(&f), key, &json!(key), BIG).await;
    }
    let keys: Vec<String> = store
        .storage_entries(id(&f))
        .await
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, ["", "B", "E", "a", "aa", "b", "é"]);
}

// ---------------------------------------------------------------------------------------------
// Cascades
// ---------------------------------------------------------------------------------------------

async fn deleting_an_application_cascades(store: &dyn Store) {
    struct Fixture {
        app: Value,
        flow: Value,
        version: Value,
        token: TokenRecord,
    }
    let mut fixtures = Vec::new();
    for n in 0..2 {
        let app = application(&format!("app {n}"));
        store.insert_application(&app).await.unwrap();
        let flow = flow(id(&app), "flow", "cloud");
        store.insert_flow(&flow).await.unwrap();
        let version = version(&flow, "v1");
        store.insert_version(&version, false).await.unwrap();
        set(store, id(&flow), "counter", &json!(n), BIG).await;
        let token = token(Some(id(&app)), "token", &format!("hash-{n}"));
        store.insert_token(&token).await.unwrap();
        fixtures.push(Fixture {
            app,
            flow,
            version,
            token,
        });
    }
    let user_token = token(None, "owner", "owner-hash");
    store.insert_token(&user_token).await.unwrap();

    let gone = &fixtures[0];
    assert!(store.delete_application(id(&gone.app)).await.unwrap());
    let (app_id, flow_id) = (id(&gone.app), id(&gone.flow));
    assert_eq!(store.get_application(app_id).await.unwrap(), None);
    assert_eq!(store.get_flow(app_id, flow_id).await.unwrap(), None);
    assert_eq!(
        store.list_flows(app_id, &all()).await.unwrap().total_count,
        0
    );
    assert_eq!(
        store.get_version(flow_id, id(&gone.version)).await.unwrap(),
        None
    );
    assert_eq!(store.get_version(flow_id, "v1").await.unwrap(), None);
    assert!(store.all_versions(flow_id).await.unwrap().is_empty());
    assert!(store.storage_entries(flow_id).await.unwrap().is_empty());
    assert_eq!(
        store.storage_metadata(flow_id).await.unwrap(),
        StorageMetadata::default()
    );
    assert!(store.token_by_hash("hash-0").await.unwrap().is_none());
    assert!(store
        .get_token(app_id, &gone.token.id)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store.list_tokens(app_id, &all()).await.unwrap().total_count,
        0
    );

    // The other application and the user token are untouched.
    let kept = &fixtures[1];
    let (app_id, flow_id) = (id(&kept.app), id(&kept.flow));
    assert_eq!(
        store.get_application(app_id).await.unwrap(),
        Some(kept.app.clone())
    );
    assert_eq!(
        store.get_flow(app_id, flow_id).await.unwrap(),
        Some(kept.flow.clone())
    );
    assert_eq!(
        store.get_version(flow_id, "v1").await.unwrap(),
        Some(kept.version.clone())
    );
    assert_eq!(
        store.storage_entries(flow_id).await.unwrap()["counter"],
        json!(1)
    );
    let found = store
        .token_by_hash("hash-1")
        .await
        .unwrap()
        .expect("kept token");
    assert_eq!(found.id, kept.token.id);
    let users = store.user_tokens().await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].id, user_token.id);
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

fn assert_same_token(found: &TokenRecord, expected: &TokenRecord) {
    assert_eq!(found.id, expected.id);
    assert_eq!(found.application_id, expected.application_id);
    assert_eq!(found.token_hash, expected.token_hash);
    assert_eq!(found.doc, expected.doc);
}

async fn tokens(store: &dyn Store) {
    let app = application("Tokens");
    let other_app = application("Elsewhere");
    store.insert_application(&app).await.unwrap();
    store.insert_application(&other_app).await.unwrap();
    let (app_id, other_id) = (id(&app).to_owned(), id(&other_app).to_owned());

    let first = token(Some(&app_id), "first", "aaaa");
    store.insert_token(&first).await.unwrap();
    let found = store.token_by_hash("aaaa").await.unwrap().expect("by hash");
    assert_same_token(&found, &first);
    assert!(store.token_by_hash("AAAA").await.unwrap().is_none());
    assert!(store.token_by_hash("bbbb").await.unwrap().is_none());

    // get_token is scoped by application.
    let found = store
        .get_token(&app_id, &first.id)
        .await
        .unwrap()
        .expect("get");
    assert_same_token(&found, &first);
    assert!(store
        .get_token(&other_id, &first.id)
        .await
        .unwrap()
        .is_none());
    assert!(store.get_token(&app_id, &new_id()).await.unwrap().is_none());

    // A reused hash is a conflict, whoever the token belongs to; nothing is stored.
    for dup in [
        token(Some(&app_id), "dup", "aaaa"),
        token(Some(&other_id), "dup", "aaaa"),
        token(None, "dup", "aaaa"),
    ] {
        let err = store.insert_token(&dup).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        assert!(store.get_token(&app_id, &dup.id).await.unwrap().is_none());
        assert!(store.get_token(&other_id, &dup.id).await.unwrap().is_none());
    }
    assert!(store.user_tokens().await.unwrap().is_empty());

    // Update replaces the document and keeps the hash and the application.
    let mut updated = first.clone();
    updated.doc["name"] = json!("renamed");
    updated.doc["status"] = json!("inactive");
    updated.doc["expirationDate"] = json!(date(20));
    assert!(store.update_token(&updated).await.unwrap());
    let found = store
        .get_token(&app_id, &first.id)
        .await
        .unwrap()
        .expect("get");
    assert_same_token(&found, &updated);
    assert_same_token(
        &store.token_by_hash("aaaa").await.unwrap().expect("by hash"),
        &updated,
    );
    assert!(!store
        .update_token(&token(Some(&app_id), "missing", "cccc"))
        .await
        .unwrap());
    assert!(store.token_by_hash("cccc").await.unwrap().is_none());

    // Listing: only the application's own tokens, sorted and filtered by their columns.
    //           name     status      expiration
    let rows = [
        ("bravo", "active", Some(date(5))),
        ("Alpha", "active", None),
        ("charlie", "inactive", Some(date(3))),
    ];
    for (n, (name, status, expiration)) in rows.into_iter().enumerate() {
        let mut t = token(Some(&app_id), name, &format!("hash-{n}"));
        t.doc["status"] = json!(status);
        t.doc["expirationDate"] = json!(expiration);
        store.insert_token(&t).await.unwrap();
    }
    store
        .insert_token(&token(Some(&other_id), "other app's", "hash-other"))
        .await
        .unwrap();
    let user = token(None, "owner", "hash-owner");
    store.insert_token(&user).await.unwrap();

    let page = store.list_tokens(&app_id, &all()).await.unwrap();
    assert_eq!(page.total_count, 4);
    assert_eq!(names(&page), ["Alpha", "bravo", "charlie", "renamed"]);
    let page = store
        .list_tokens(&app_id, &query(Column::Name, SortDirection::Desc))
        .await
        .unwrap();
    assert_eq!(names(&page), ["renamed", "charlie", "bravo", "Alpha"]);
    let page = store
        .list_tokens(&app_id, &filtered(Column::Status, "INACTIVE"))
        .await
        .unwrap();
    assert_eq!(names(&page), ["charlie", "renamed"]);
    assert_eq!(page.total_count, 2);
    // Tokens without an expiration sort first ascending (as in Losant's MongoDB), last descending.
    let page = store
        .list_tokens(&app_id, &query(Column::ExpirationDate, SortDirection::Asc))
        .await
        .unwrap();
    assert_eq!(names(&page), ["Alpha", "charlie", "bravo", "renamed"]);
    let page = store
        .list_tokens(&app_id, &query(Column::ExpirationDate, SortDirection::Desc))
        .await
        .unwrap();
    assert_eq!(names(&page), ["renamed", "bravo", "charlie", "Alpha"]);
    let page = store
        .list_tokens(
            &app_id,
            &ListQuery {
                page: 1,
                per_page: 3,
                ..query(Column::Status, SortDirection::Asc)
            },
        )
        .await
        .unwrap();
    assert_eq!(page.total_count, 4);
    assert_eq!(page.items.len(), 1);
    let page = store.list_tokens(&other_id, &all()).await.unwrap();
    assert_eq!(names(&page), ["other app's"]);

    // User-level tokens: no application.
    let users = store.user_tokens().await.unwrap();
    assert_eq!(users.len(), 1);
    assert_same_token(&users[0], &user);
    assert_same_token(
        &store
            .token_by_hash("hash-owner")
            .await
            .unwrap()
            .expect("owner"),
        &user,
    );
    assert!(store.get_token(&app_id, &user.id).await.unwrap().is_none());
    // delete_user_token leaves application tokens alone, and delete_token user tokens.
    assert!(!store.delete_user_token(&first.id).await.unwrap());
    assert!(store.get_token(&app_id, &first.id).await.unwrap().is_some());
    assert!(!store.delete_token(&app_id, &user.id).await.unwrap());
    assert!(store.delete_user_token(&user.id).await.unwrap());
    assert!(!store.delete_user_token(&user.id).await.unwrap());
    assert!(store.user_tokens().await.unwrap().is_empty());
    assert!(store.token_by_hash("hash-owner").await.unwrap().is_none());

    // delete_token is scoped by application.
    assert!(!store.delete_token(&other_id, &first.id).await.unwrap());
    assert!(store.delete_token(&app_id, &first.id).await.unwrap());
    assert!(!store.delete_token(&app_id, &first.id).await.unwrap());
    assert!(store.get_token(&app_id, &first.id).await.unwrap().is_none());
    assert!(store.token_by_hash("aaaa").await.unwrap().is_none());
    assert_eq!(
        store
            .list_tokens(&app_id, &all())
            .await
            .unwrap()
            .total_count,
        3
    );

    // A deleted token's hash may be used again.
    store
        .insert_token(&token(Some(&app_id), "again", "aaaa"))
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Application resources (integrations)
// ---------------------------------------------------------------------------------------------

fn integration(application_id: &str, name: &str, kind: &str) -> Value {
    let now = now_iso();
    json!({
        "id": new_id(),
        "applicationId": application_id,
        "name": name,
        "integrationType": kind,
        "enabled": true,
        "creationDate": now,
        "lastUpdated": now,
    })
}

async fn integrations(store: &dyn Store) {
    const KIND: ResourceKind = ResourceKind::Integration;
    let app = application("Integrations");
    let other = application("Other");
    store.insert_application(&app).await.unwrap();
    store.insert_application(&other).await.unwrap();
    let (app_id, other_id) = (id(&app).to_owned(), id(&other).to_owned());
    let broker = integration(&app_id, "broker", "mqtt");
    let queue = integration(&app_id, "queue", "sqs");
    let elsewhere = integration(&other_id, "elsewhere", "mqtt");
    for doc in [&broker, &queue, &elsewhere] {
        store.insert_resource(KIND, doc).await.unwrap();
    }
    assert!(matches!(
        store.insert_resource(KIND, &broker).await,
        Err(StoreError::Conflict(_))
    ));

    // Reads are confined to the owning application.
    assert_eq!(
        store
            .get_resource(KIND, &app_id, id(&broker))
            .await
            .unwrap(),
        Some(broker.clone())
    );
    assert_eq!(
        store
            .get_resource(KIND, &other_id, id(&broker))
            .await
            .unwrap(),
        None
    );

    let page = store.list_resources(KIND, &app_id, &all()).await.unwrap();
    assert_eq!(names(&page), ["broker", "queue"]);
    assert_eq!(page.total_count, 2);
    let by_type = store
        .list_resources(KIND, &app_id, &query(Column::Kind, SortDirection::Desc))
        .await
        .unwrap();
    assert_eq!(names(&by_type), ["queue", "broker"]);
    let mqtt_only = store
        .list_resources(KIND, &app_id, &filtered(Column::Kind, "mq*"))
        .await
        .unwrap();
    assert_eq!(names(&mqtt_only), ["broker"]);

    let mut renamed = broker.clone();
    renamed["name"] = json!("a broker");
    assert!(store.update_resource(KIND, &renamed).await.unwrap());
    let page = store.list_resources(KIND, &app_id, &all()).await.unwrap();
    assert_eq!(names(&page), ["a broker", "queue"]);

    let everywhere = store.all_resources(KIND).await.unwrap();
    assert_eq!(everywhere.len(), 3);

    // Deleting needs the right application; deleting the application takes its integrations.
    assert!(!store
        .delete_resource(KIND, &other_id, id(&broker))
        .await
        .unwrap());
    assert!(store
        .delete_resource(KIND, &app_id, id(&broker))
        .await
        .unwrap());
    assert!(!store.update_resource(KIND, &renamed).await.unwrap());
    assert!(store.delete_application(&app_id).await.unwrap());
    let left = store.all_resources(KIND).await.unwrap();
    assert_eq!(left, vec![elsewhere]);
}

fn webhook(application_id: &str, name: &str, token: &str, created: &str) -> Value {
    let id = new_id();
    json!({
        "id": id,
        "webhookId": id,
        "applicationId": application_id,
        "name": name,
        "token": token,
        "responseCode": 200,
        "enabled": true,
        "creationDate": created,
        "lastUpdated": created,
    })
}

async fn webhooks(store: &dyn Store) {
    const KIND: ResourceKind = ResourceKind::Webhook;
    let app = application("Webhooks");
    let other = application("Other");
    store.insert_application(&app).await.unwrap();
    store.insert_application(&other).await.unwrap();
    let (app_id, other_id) = (id(&app).to_owned(), id(&other).to_owned());
    let readings = webhook(&app_id, "readings", "token-a", &date(2));
    let alarms = webhook(&app_id, "alarms", "token-b", &date(3));
    let elsewhere = webhook(&other_id, "elsewhere", "token-c", &date(1));
    for doc in [&readings, &alarms, &elsewhere] {
        store.insert_resource(KIND, doc).await.unwrap();
    }
    assert!(matches!(
        store.insert_resource(KIND, &readings).await,
        Err(StoreError::Conflict(_))
    ));
    // Tokens name public URLs: two webhooks never share one, even across applications.
    let same_token = webhook(&other_id, "copycat", "token-a", &date(4));
    assert!(matches!(
        store.insert_resource(KIND, &same_token).await,
        Err(StoreError::Conflict(_))
    ));

    // Webhooks and integrations are apart: same application, different tables.
    assert_eq!(
        store
            .get_resource(ResourceKind::Integration, &app_id, id(&readings))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get_resource(KIND, &app_id, id(&readings))
            .await
            .unwrap(),
        Some(readings.clone())
    );
    assert_eq!(
        store
            .get_resource(KIND, &other_id, id(&readings))
            .await
            .unwrap(),
        None
    );

    let page = store.list_resources(KIND, &app_id, &all()).await.unwrap();
    assert_eq!(names(&page), ["alarms", "readings"]);
    assert_eq!(page.total_count, 2);
    let newest_first = store
        .list_resources(
            KIND,
            &app_id,
            &query(Column::CreationDate, SortDirection::Desc),
        )
        .await
        .unwrap();
    assert_eq!(names(&newest_first), ["alarms", "readings"]);
    let oldest_first = store
        .list_resources(
            KIND,
            &app_id,
            &query(Column::CreationDate, SortDirection::Asc),
        )
        .await
        .unwrap();
    assert_eq!(names(&oldest_first), ["readings", "alarms"]);
    let globbed = store
        .list_resources(KIND, &app_id, &filtered(Column::Name, "read*"))
        .await
        .unwrap();
    assert_eq!(names(&globbed), ["readings"]);
    let second_page = store
        .list_resources(
            KIND,
            &app_id,
            &ListQuery {
                per_page: 1,
                page: 1,
                ..all()
            },
        )
        .await
        .unwrap();
    assert_eq!(names(&second_page), ["readings"]);
    assert_eq!(second_page.total_count, 2);

    let mut changed = readings.clone();
    changed["name"] = json!("zz readings");
    changed["lastUpdated"] = json!(date(9));
    assert!(store.update_resource(KIND, &changed).await.unwrap());
    let by_update = store
        .list_resources(
            KIND,
            &app_id,
            &query(Column::LastUpdated, SortDirection::Desc),
        )
        .await
        .unwrap();
    assert_eq!(names(&by_update), ["zz readings", "alarms"]);

    assert_eq!(store.all_resources(KIND).await.unwrap().len(), 3);
    assert!(!store
        .delete_resource(KIND, &other_id, id(&readings))
        .await
        .unwrap());
    assert!(store
        .delete_resource(KIND, &app_id, id(&readings))
        .await
        .unwrap());
    assert!(!store.update_resource(KIND, &changed).await.unwrap());
    // A deleted webhook's token is free again.
    store.insert_resource(KIND, &same_token).await.unwrap();
    assert!(store.delete_application(&app_id).await.unwrap());
    let left = sorted(
        store
            .all_resources(KIND)
            .await
            .unwrap()
            .iter()
            .map(|doc| doc["name"].as_str().unwrap().to_owned())
            .collect(),
    );
    assert_eq!(left, ["copycat", "elsewhere"]);
}

// ---------------------------------------------------------------------------------------------
// Flows
// ---------------------------------------------------------------------------------------------

async fn flows(store: &dyn Store) {
    let app = application("Flows");
    let other_app = application("Other");
    store.insert_application(&app).await.unwrap();
    store.insert_application(&other_app).await.unwrap();
    let (app_id, other_id) = (id(&app), id(&other_app));

    let cloud_b = flow(app_id, "Bravo", "cloud");
    let cloud_a = flow(app_id, "alpha", "cloud");
    let edge = flow(app_id, "Edge thing", "edge");
    let elsewhere = flow(other_id, "Elsewhere", "cloud");
    for f in [&cloud_b, &cloud_a, &edge, &elsewhere] {
        store.insert_flow(f).await.unwrap();
    }
    let err = store.insert_flow(&cloud_a).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");

    // get is scoped by application.
    assert_eq!(
        store.get_flow(app_id, id(&cloud_a)).await.unwrap(),
        Some(cloud_a.clone())
    );
    assert_eq!(store.get_flow(other_id, id(&cloud_a)).await.unwrap(), None);
    assert_eq!(
        store.get_flow(other_id, id(&elsewhere)).await.unwrap(),
        Some(elsewhere.clone())
    );
    assert_eq!(store.get_flow(app_id, id(&elsewhere)).await.unwrap(), None);
    assert_eq!(store.get_flow(app_id, &new_id()).await.unwrap(), None);

    let page = store.list_flows(app_id, &all()).await.unwrap();
    assert_eq!(page.total_count, 3);
    assert_eq!(names(&page), ["alpha", "Bravo", "Edge thing"]);
    let by_class = |class: &str| ListQuery {
        flow_class: Some(class.to_owned()),
        ..all()
    };
    let page = store.list_flows(app_id, &by_class("cloud")).await.unwrap();
    assert_eq!(names(&page), ["alpha", "Bravo"]);
    assert_eq!(page.total_count, 2);
    let page = store.list_flows(app_id, &by_class("edge")).await.unwrap();
    assert_eq!(names(&page), ["Edge thing"]);
    let page = store
        .list_flows(app_id, &by_class("customNode"))
        .await
        .unwrap();
    assert_eq!(page.total_count, 0);
    assert!(page.items.is_empty());
    // Class, filter, sort and paging together.
    let page = store
        .list_flows(
            app_id,
            &ListQuery {
                sort: Column::Name,
                direction: SortDirection::Desc,
                page: 0,
                per_page: 1,
                filter: Some((Column::Name, "*A*".into())),
                flow_class: Some("cloud".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(page.total_count, 2);
    assert_eq!(names(&page), ["Bravo"]);
    let page = store.list_flows(other_id, &all()).await.unwrap();
    assert_eq!(names(&page), ["Elsewhere"]);

    // Update: the copied columns follow the document.
    let mut moved = cloud_b.clone();
    moved["name"] = json!("Zulu");
    moved["flowClass"] = json!("edge");
    moved["description"] = json!("now on the edge");
    assert!(store.update_flow(&moved).await.unwrap());
    assert_eq!(
        store.get_flow(app_id, id(&moved)).await.unwrap(),
        Some(moved.clone())
    );
    let page = store.list_flows(app_id, &by_class("edge")).await.unwrap();
    assert_eq!(names(&page), ["Edge thing", "Zulu"]);
    let page = store.list_flows(app_id, &by_class("cloud")).await.unwrap();
    assert_eq!(names(&page), ["alpha"]);
    assert!(!store
        .update_flow(&flow(app_id, "missing", "cloud"))
        .await
        .unwrap());
    assert_eq!(
        store.list_flows(app_id, &all()).await.unwrap().total_count,
        3
    );

    // Delete is scoped by application and takes versions and storage with it.
    let v1 = version(&cloud_a, "v1");
    let v2 = version(&cloud_a, "v2");
    store.insert_version(&v1, false).await.unwrap();
    store.insert_version(&v2, false).await.unwrap();
    set(store, id(&cloud_a), "k", &json!("v"), BIG).await;
    let kept_version = version(&edge, "v1");
    store.insert_version(&kept_version, false).await.unwrap();
    set(store, id(&edge), "k", &json!("kept"), BIG).await;

    assert!(!store.delete_flow(other_id, id(&cloud_a)).await.unwrap());
    assert_eq!(store.all_versions(id(&cloud_a)).await.unwrap().len(), 2);
    assert!(store.delete_flow(app_id, id(&cloud_a)).await.unwrap());
    assert!(!store.delete_flow(app_id, id(&cloud_a)).await.unwrap());
    assert_eq!(store.get_flow(app_id, id(&cloud_a)).await.unwrap(), None);
    assert_eq!(
        store.get_version(id(&cloud_a), id(&v1)).await.unwrap(),
        None
    );
    assert_eq!(store.get_version(id(&cloud_a), "v2").await.unwrap(), None);
    assert!(store.all_versions(id(&cloud_a)).await.unwrap().is_empty());
    assert_eq!(
        store
            .list_versions(id(&cloud_a), &all())
            .await
            .unwrap()
            .total_count,
        0
    );
    assert!(store
        .storage_entries(id(&cloud_a))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.storage_metadata(id(&cloud_a)).await.unwrap(),
        StorageMetadata::default()
    );
    // The other flows keep theirs.
    assert_eq!(
        store.get_version(id(&edge), "v1").await.unwrap(),
        Some(kept_version)
    );
    assert_eq!(
        store.storage_entries(id(&edge)).await.unwrap()["k"],
        json!("kept")
    );
    assert_eq!(
        store.list_flows(app_id, &all()).await.unwrap().total_count,
        2
    );
}

async fn import_flows_is_all_or_nothing(store: &dyn Store) {
    let app = application("Import");
    store.insert_application(&app).await.unwrap();
    let app_id = id(&app);
    let existing = flow(app_id, "existing", "cloud");
    store.insert_flow(&existing).await.unwrap();
    let existing_version = version(&existing, "v1");
    store
        .insert_version(&existing_version, false)
        .await
        .unwrap();

    let first = flow(app_id, "first", "cloud");
    let second = flow(app_id, "second", "edge");
    let good_versions = vec![
        version(&first, "v1"),
        version(&first, "v2"),
        version(&second, "v1"),
    ];

    // Each bad batch breaks one rule with its last version.
    let mut clashing_name = good_versions.clone();
    clashing_name.push(version(&second, "v1"));
    let mut clashing_id = good_versions.clone();
    let mut reused = version(&second, "v9");
    reused["id"] = existing_version["id"].clone();
    clashing_id.push(reused);
    let mut orphan = good_versions.clone();
    orphan.push(version(&flow(app_id, "never stored", "cloud"), "v1"));
    let bad_batches = [
        (
            "version name used twice",
            vec![first.clone(), second.clone()],
            clashing_name,
        ),
        (
            "version id already taken",
            vec![first.clone(), second.clone()],
            clashing_id,
        ),
        (
            "version of a flow not in the batch",
            vec![first.clone(), second.clone()],
            orphan,
        ),
        (
            "flow id already taken",
            vec![first.clone(), existing.clone(), second.clone()],
            good_versions.clone(),
        ),
    ];
    for (what, flows, versions) in bad_batches {
        let result = store.import_flows(&flows, &versions).await;
        assert!(result.is_err(), "{what}: {result:?}");
        for f in [&first, &second] {
            assert_eq!(store.get_flow(app_id, id(f)).await.unwrap(), None, "{what}");
            assert!(
                store.all_versions(id(f)).await.unwrap().is_empty(),
                "{what}"
            );
        }
        let page = store.list_flows(app_id, &all()).await.unwrap();
        assert_eq!(names(&page), ["existing"], "{what}");
        assert_eq!(
            store
                .get_version(id(&existing), id(&existing_version))
                .await
                .unwrap(),
            Some(existing_version.clone()),
            "{what}"
        );
    }

    store
        .import_flows(&[first.clone(), second.clone()], &good_versions)
        .await
        .unwrap();
    assert_eq!(
        store.get_flow(app_id, id(&first)).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store.get_flow(app_id, id(&second)).await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(store.all_versions(id(&first)).await.unwrap().len(), 2);
    assert_eq!(
        store.get_version(id(&second), "v1").await.unwrap(),
        Some(good_versions[2].clone())
    );
    assert_eq!(
        store.list_flows(app_id, &all()).await.unwrap().total_count,
        3
    );

    // Flows alone, and an empty batch, are fine too.
    let lone = flow(app_id, "lone", "cloud");
    store
        .import_flows(std::slice::from_ref(&lone), &[])
        .await
        .unwrap();
    store.import_flows(&[], &[]).await.unwrap();
    assert_eq!(store.get_flow(app_id, id(&lone)).await.unwrap(), Some(lone));
}

// ---------------------------------------------------------------------------------------------
// Versions
// ---------------------------------------------------------------------------------------------

async fn versions(store: &dyn Store) {
    let (app, f) = app_with_flow(store).await;
    let other_flow = flow(id(&app), "Other flow", "cloud");
    store.insert_flow(&other_flow).await.unwrap();
    let flow_id = id(&f);

    let mut v1 = version(&f, "v1");
    v1["creationDate"] = json!(date(2));
    v1["lastUpdated"] = json!(date(1));
    let mut v2 = version(&f, "V2-beta");
    v2["creationDate"] = json!(date(1));
    v2["lastUpdated"] = json!(date(3));
    let mut v3 = version(&f, "v3");
    v3["creationDate"] = json!(date(3));
    v3["lastUpdated"] = json!(date(2));
    for v in [&v1, &v2, &v3] {
        store.insert_version(v, false).await.unwrap();
    }
    // The same name in another flow is no clash.
    let elsewhere = version(&other_flow, "v1");
    store.insert_version(&elsewhere, false).await.unwrap();

    // By id and by name, within the flow only.
    assert_eq!(
        store.get_version(flow_id, id(&v1)).await.unwrap(),
        Some(v1.clone())
    );
    assert_eq!(
        store.get_version(flow_id, "v1").await.unwrap(),
        Some(v1.clone())
    );
    assert_eq!(
        store.get_version(flow_id, "V2-beta").await.unwrap(),
        Some(v2.clone())
    );
    assert_eq!(
        store.get_version(id(&other_flow), "v1").await.unwrap(),
        Some(elsewhere.clone())
    );
    assert_eq!(
        store.get_version(id(&other_flow), id(&v1)).await.unwrap(),
        None
    );
    assert_eq!(
        store.get_version(flow_id, id(&elsewhere)).await.unwrap(),
        None
    );
    assert_eq!(store.get_version(flow_id, "v9").await.unwrap(), None);

    // A name clash is a conflict and changes nothing…
    let mut clash = version(&f, "v1");
    clash["notes"] = json!("should not be stored");
    let err = store.insert_version(&clash, false).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(
        store.get_version(flow_id, "v1").await.unwrap(),
        Some(v1.clone())
    );
    assert_eq!(store.get_version(flow_id, id(&clash)).await.unwrap(), None);
    // …unless replacing, which overwrites the version (the caller keeps its id in the document).
    let mut replacement = clash.clone();
    replacement["id"] = v1["id"].clone();
    replacement["creationDate"] = v1["creationDate"].clone();
    replacement["notes"] = json!("replaced");
    replacement["lastUpdated"] = json!(date(9));
    store.insert_version(&replacement, true).await.unwrap();
    assert_eq!(
        store.get_version(flow_id, "v1").await.unwrap(),
        Some(replacement.clone())
    );
    assert_eq!(
        store.get_version(flow_id, id(&v1)).await.unwrap(),
        Some(replacement.clone())
    );
    assert_eq!(store.all_versions(flow_id).await.unwrap().len(), 3);
    // Replace with no clash is a plain insert.
    let v4 = version(&f, "v4");
    store.insert_version(&v4, true).await.unwrap();
    assert_eq!(
        store.get_version(flow_id, "v4").await.unwrap(),
        Some(v4.clone())
    );

    // An id beats a version whose name happens to be that id.
    let mut named_like_id = version(&f, id(&v3));
    named_like_id["notes"] = json!("named like v3's id");
    store.insert_version(&named_like_id, false).await.unwrap();
    assert_eq!(
        store.get_version(flow_id, id(&v3)).await.unwrap(),
        Some(v3.clone())
    );
    assert!(store
        .delete_version(flow_id, id(&named_like_id))
        .await
        .unwrap());

    // Listing.
    let page = store
        .list_versions(flow_id, &query(Column::Version, SortDirection::Asc))
        .await
        .unwrap();
    assert_eq!(field(&page, "version"), ["v1", "V2-beta", "v3", "v4"]);
    assert_eq!(page.total_count, 4);
    let page = store
        .list_versions(flow_id, &query(Column::Name, SortDirection::Desc))
        .await
        .unwrap();
    assert_eq!(field(&page, "version"), ["v4", "v3", "V2-beta", "v1"]);
    let page = store
        .list_versions(flow_id, &query(Column::CreationDate, SortDirection::Asc))
        .await
        .unwrap();
    assert_eq!(field(&page, "version")[..3], ["V2-beta", "v1", "v3"]);
    let page = store
        .list_versions(flow_id, &query(Column::LastUpdated, SortDirection::Desc))
        .await
        .unwrap();
    assert_eq!(field(&page, "version"), ["v4", "v1", "V2-beta", "v3"]);
    let page = store
        .list_versions(flow_id, &filtered(Column::Version, "v2*"))
        .await
        .unwrap();
    assert_eq!(field(&page, "version"), ["V2-beta"]);
    let page = store
        .list_versions(
            flow_id,
            &ListQuery {
                page: 1,
                per_page: 2,
                filter: Some((Column::Name, "V*".into())),
                ..query(Column::Version, SortDirection::Asc)
            },
        )
        .await
        .unwrap();
    assert_eq!(page.total_count, 4);
    assert_eq!(field(&page, "version"), ["v3", "v4"]);
    let page = store.list_versions(id(&other_flow), &all()).await.unwrap();
    assert_eq!(page.items, vec![elsewhere.clone()]);

    let every = store.all_versions(flow_id).await.unwrap();
    assert_eq!(
        sorted(every.iter().map(|v| id(v).to_owned()).collect()),
        sorted(vec![
            id(&v1).to_owned(),
            id(&v2).to_owned(),
            id(&v3).to_owned(),
            id(&v4).to_owned()
        ])
    );
    assert!(every.contains(&replacement));

    // Update.
    let mut edited = v3.clone();
    edited["notes"] = json!("edited");
    edited["version"] = json!("v3-final");
    assert!(store.update_version(&edited).await.unwrap());
    assert_eq!(
        store.get_version(flow_id, "v3-final").await.unwrap(),
        Some(edited.clone())
    );
    assert_eq!(store.get_version(flow_id, "v3").await.unwrap(), None);
    assert!(!store.update_version(&version(&f, "missing")).await.unwrap());

    // Delete, scoped by flow.
    assert!(!store
        .delete_version(id(&other_flow), id(&v2))
        .await
        .unwrap());
    assert!(store.delete_version(flow_id, id(&v2)).await.unwrap());
    assert!(!store.delete_version(flow_id, id(&v2)).await.unwrap());
    assert_eq!(store.get_version(flow_id, id(&v2)).await.unwrap(), None);
    assert_eq!(store.get_version(flow_id, "V2-beta").await.unwrap(), None);
    assert_eq!(store.all_versions(flow_id).await.unwrap().len(), 3);
    // Its name is free again.
    store
        .insert_version(&version(&f, "V2-beta"), false)
        .await
        .unwrap();
    assert_eq!(
        store
            .list_versions(flow_id, &all())
            .await
            .unwrap()
            .total_count,
        4
    );
}

// ---------------------------------------------------------------------------------------------
// Storage
// ---------------------------------------------------------------------------------------------

fn memory_of(entries: &Map<String, Value>) -> u64 {
    entries
        .iter()
        .map(|(k, v)| (k.len() + v.to_string().len()) as u64)
        .sum()
}

async fn storage_round_trip_and_metadata(store: &dyn Store) {
    let (_, f) = app_with_flow(store).await;
    let (_, other) = app_with_flow(store).await;
    let flow_id = id(&f);
    assert!(store.storage_entries(flow_id).await.unwrap().is_empty());
    assert_eq!(
        store.storage_metadata(flow_id).await.unwrap(),
        StorageMetadata::default()
    );

    let values = json!({
        "null": null,
        "true": true,
        "false": false,
        "zero": 0,
        "int": 42,
        "negative": -17,
        "float": 1.5,
        "tiny": 1e-7,
        "big": 18_446_744_073_709_551_615u64,
        "min": -9_223_372_036_854_775_808i64,
        "string": "hello",
        "empty string": "",
        "tricky string": "quote \" backslash \\ newline \n tab \t nul \u{0} é 日本 🎉",
        "array": [1, "two", null, [3.25], {"four": false}],
        "empty array": [],
        "object": {"nested": {"deeper": [true, {"x": "y"}]}, "n": -1.25},
        "empty object": {},
        "é": "accent key",
        "日本": "cjk key",
        "🎉": "🎉",
        "": "empty key",
        "spaces and.dots/slashes": 1,
    });
    let values = values.as_object().unwrap().clone();
    for (key, value) in &values {
        set(store, flow_id, key, value, BIG).await;
    }
    let entries = store.storage_entries(flow_id).await.unwrap();
    assert_eq!(entries, values);
    for (key, value) in &values {
        // Each type comes back as the same type, not just an equal-looking value.
        assert_eq!(entries[key].to_string(), value.to_string(), "{key}");
    }

    // Memory is UTF-8 bytes of key plus bytes of compact value JSON.
    let metadata = store.storage_metadata(flow_id).await.unwrap();
    assert_eq!(metadata.keys_count, values.len() as u64);
    assert_eq!(metadata.memory_used, memory_of(&values));

    // Spelled out for multibyte keys: "é" is 2 bytes, `"é"` is 4 bytes.
    let other_id = id(&other);
    set(store, other_id, "é", &json!("é"), BIG).await;
    assert_eq!(
        store.storage_metadata(other_id).await.unwrap(),
        StorageMetadata {
            memory_used: 2 + 4,
            keys_count: 1
        }
    );
    set(store, other_id, "日本", &json!(12), BIG).await;
    assert_eq!(
        store.storage_metadata(other_id).await.unwrap().memory_used,
        6 + 6 + 2
    );

    // Overwriting replaces the value, and the metadata follows.
    set(store, flow_id, "int", &json!("now a string"), BIG).await;
    let mut expected = values.clone();
    expected.insert("int".into(), json!("now a string"));
    assert_eq!(store.storage_entries(flow_id).await.unwrap(), expected);
    let metadata = store.storage_metadata(flow_id).await.unwrap();
    assert_eq!(metadata.keys_count, expected.len() as u64);
    assert_eq!(metadata.memory_used, memory_of(&expected));

    // Delete one key.
    assert!(store.storage_delete(flow_id, "é").await.unwrap());
    assert!(!store.storage_delete(flow_id, "é").await.unwrap());
    assert!(!store.storage_delete(flow_id, "never set").await.unwrap());
    expected.remove("é");
    assert_eq!(store.storage_entries(flow_id).await.unwrap(), expected);
    let metadata = store.storage_metadata(flow_id).await.unwrap();
    assert_eq!(metadata.keys_count, expected.len() as u64);
    assert_eq!(metadata.memory_used, memory_of(&expected));
    // Keys are per flow.
    assert_eq!(
        store.storage_entries(other_id).await.unwrap()["é"],
        json!("é")
    );

    // Clear one flow.
    store.storage_clear(flow_id).await.unwrap();
    assert!(store.storage_entries(flow_id).await.unwrap().is_empty());
    assert_eq!(
        store.storage_metadata(flow_id).await.unwrap(),
        StorageMetadata::default()
    );
    store.storage_clear(flow_id).await.unwrap();
    assert_eq!(store.storage_entries(other_id).await.unwrap().len(), 2);
}

async fn storage_caps(store: &dyn Store) {
    let (_, f) = app_with_flow(store).await;
    let (_, other) = app_with_flow(store).await;
    let flow_id = id(&f);
    let limit = |e: StoreError| assert!(matches!(e, StoreError::LimitExceeded(_)), "{e:?}");

    // Keys.
    let caps = StorageCaps {
        max_keys: 2,
        max_bytes: 1_000,
    };
    store.storage_set(flow_id, "a", "1", caps).await.unwrap();
    store.storage_set(flow_id, "b", "2", caps).await.unwrap();
    limit(
        store
            .storage_set(flow_id, "c", "3", caps)
            .await
            .unwrap_err(),
    );
    assert!(!store
        .storage_entries(flow_id)
        .await
        .unwrap()
        .contains_key("c"));
    // Overwriting adds no key.
    store.storage_set(flow_id, "a", "10", caps).await.unwrap();
    // Caps are per flow.
    store.storage_set(id(&other), "c", "3", caps).await.unwrap();
    store.storage_set(id(&other), "d", "4", caps).await.unwrap();
    // Deleting makes room.
    assert!(store.storage_delete(flow_id, "b").await.unwrap());
    store.storage_set(flow_id, "c", "3", caps).await.unwrap();
    assert_eq!(
        store.storage_entries(flow_id).await.unwrap(),
        json!({"a": 10, "c": 3}).as_object().unwrap().clone()
    );
    store.storage_clear(flow_id).await.unwrap();

    // Bytes: key bytes plus value JSON bytes, up to and including the cap.
    let caps = StorageCaps {
        max_keys: 100,
        max_bytes: 20,
    };
    // "é" (2) + `"abcdefgh"` (10) = 12.
    store
        .storage_set(flow_id, "é", r#""abcdefgh""#, caps)
        .await
        .unwrap();
    // 12 + "k" (1) + `1234567` (7) = 20: exactly the cap.
    store
        .storage_set(flow_id, "k", "1234567", caps)
        .await
        .unwrap();
    assert_eq!(
        store.storage_metadata(flow_id).await.unwrap().memory_used,
        20
    );
    // One more byte anywhere is refused, and nothing changes.
    limit(
        store
            .storage_set(flow_id, "z", "0", caps)
            .await
            .unwrap_err(),
    );
    limit(
        store
            .storage_set(flow_id, "k", "12345678", caps)
            .await
            .unwrap_err(),
    );
    limit(
        store
            .storage_set(flow_id, "é", r#""abcdefghi""#, caps)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        store.storage_entries(flow_id).await.unwrap(),
        json!({"é": "abcdefgh", "k": 1234567})
            .as_object()
            .unwrap()
            .clone()
    );
    assert_eq!(
        store.storage_metadata(flow_id).await.unwrap().memory_used,
        20
    );
    // Overwriting counts only the difference: same size, and smaller, both fit at the cap.
    store
        .storage_set(flow_id, "k", "7654321", caps)
        .await
        .unwrap();
    store
        .storage_set(flow_id, "é", r#""hgfedcba""#, caps)
        .await
        .unwrap();
    assert_eq!(
        store.storage_metadata(flow_id).await.unwrap().memory_used,
        20
    );
    store.storage_set(flow_id, "k", "1", caps).await.unwrap();
    assert_eq!(
        store.storage_metadata(flow_id).await.unwrap().memory_used,
        14
    );
    // …and the room freed can be used again.
    store
        .storage_set(flow_id, "é", r#""abcdefghijklmn""#, caps)
        .await
        .unwrap();
    assert_eq!(
        store.storage_metadata(flow_id).await.unwrap().memory_used,
        20
    );
    // A single entry larger than the cap never fits, even in an empty flow.
    store.storage_clear(flow_id).await.unwrap();
    let huge = format!("\"{}\"", "x".repeat(19));
    limit(
        store
            .storage_set(flow_id, "h", &huge, caps)
            .await
            .unwrap_err(),
    );
    // Multibyte keys are counted in bytes: 10 × "é" is 20 bytes, so "é"×10 + "0" is 21.
    limit(
        store
            .storage_set(flow_id, &"é".repeat(10), "0", caps)
            .await
            .unwrap_err(),
    );
    store
        .storage_set(flow_id, &"é".repeat(9), "0", caps)
        .await
        .unwrap();
    assert_eq!(
        store.storage_metadata(flow_id).await.unwrap(),
        StorageMetadata {
            memory_used: 19,
            keys_count: 1
        }
    );
}

/// An update that adds one to a number (absent counts as 0).
fn add_one() -> StorageUpdate {
    Box::new(|current| {
        let n = current.as_ref().and_then(Value::as_i64).unwrap_or(0);
        StorageChange::Set(json!(n + 1))
    })
}

async fn storage_get_and_modify(store: &dyn Store) {
    let (_, f) = app_with_flow(store).await;
    let flow_id = id(&f);
    let modify = |key: &'static str, space: StorageSpace, update: StorageUpdate| {
        store.storage_modify(flow_id, key, space, update, BIG)
    };
    assert_eq!(store.storage_get(flow_id, "a").await.unwrap(), None);
    set(store, flow_id, "a", &json!(1), BIG).await;
    assert_eq!(
        store.storage_get(flow_id, "a").await.unwrap(),
        Some(json!(1))
    );

    // The update sees the current value, and what it returns is stored and returned.
    let after = modify("a", StorageSpace::Storage, add_one()).await.unwrap();
    assert_eq!(after, Some(json!(2)));
    assert_eq!(
        store.storage_get(flow_id, "a").await.unwrap(),
        Some(json!(2))
    );
    let saw = Box::new(|current| StorageChange::Set(json!({ "saw": current })));
    let after = modify("b", StorageSpace::Storage, saw).await.unwrap();
    assert_eq!(after, Some(json!({"saw": null})));
    // Keep writes nothing and returns what is there.
    let keep = Box::new(|_| StorageChange::Keep);
    assert_eq!(
        modify("a", StorageSpace::Storage, keep).await.unwrap(),
        Some(json!(2))
    );
    let keep = Box::new(|_| StorageChange::Keep);
    assert_eq!(
        modify("none", StorageSpace::Storage, keep).await.unwrap(),
        None
    );
    // Delete removes the entry (and is harmless on an absent one).
    let delete = Box::new(|_| StorageChange::Delete);
    assert_eq!(
        modify("b", StorageSpace::Storage, delete).await.unwrap(),
        None
    );
    let delete = Box::new(|_| StorageChange::Delete);
    assert_eq!(
        modify("b", StorageSpace::Storage, delete).await.unwrap(),
        None
    );
    assert_eq!(
        Value::Object(store.storage_entries(flow_id).await.unwrap()),
        json!({"a": 2})
    );

    // Node state is its own space: not storage, not listed, not counted.
    let after = modify("a", StorageSpace::NodeState, add_one())
        .await
        .unwrap();
    assert_eq!(
        after,
        Some(json!(1)),
        "node state \"a\" is not storage \"a\""
    );
    assert_eq!(
        store.storage_get(flow_id, "a").await.unwrap(),
        Some(json!(2))
    );
    assert_eq!(
        Value::Object(store.node_states(flow_id).await.unwrap()),
        json!({"a": 1})
    );
    assert_eq!(
        store.storage_metadata(flow_id).await.unwrap(),
        StorageMetadata {
            memory_used: 2,
            keys_count: 1
        }
    );

    // Caps: a new key past the key cap, or a value past the byte cap, is refused and nothing
    // changes; node state is not capped.
    let caps = StorageCaps {
        max_keys: 1,
        max_bytes: 4,
    };
    let limited = |key: &'static str, space: StorageSpace, update: StorageUpdate| {
        store.storage_modify(flow_id, key, space, update, caps)
    };
    let refused = limited("c", StorageSpace::Storage, add_one()).await;
    assert!(
        matches!(refused, Err(StoreError::LimitExceeded(_))),
        "{refused:?}"
    );
    let grow = Box::new(|_| StorageChange::Set(json!(1000)));
    let refused = limited("a", StorageSpace::Storage, grow).await;
    assert!(
        matches!(refused, Err(StoreError::LimitExceeded(_))),
        "{refused:?}"
    );
    assert_eq!(
        Value::Object(store.storage_entries(flow_id).await.unwrap()),
        json!({"a": 2})
    );
    // "a" + "100" is 4 bytes: exactly the cap.
    let fits = Box::new(|_| StorageChange::Set(json!(100)));
    assert_eq!(
        limited("a", StorageSpace::Storage, fits).await.unwrap(),
        Some(json!(100))
    );
    let big = Box::new(|_| StorageChange::Set(json!("far more than four bytes")));
    limited("c", StorageSpace::NodeState, big).await.unwrap();

    // A flow that does not exist keeps nothing, but the update still runs, on no value.
    let missing = "0123456789abcdef01234567";
    let (seen, saw) = std::sync::mpsc::channel();
    let update = Box::new(move |current| {
        seen.send(current).expect("the test is listening");
        StorageChange::Set(json!(1))
    });
    let after = store
        .storage_modify(missing, "k", StorageSpace::Storage, update, BIG)
        .await
        .unwrap();
    assert_eq!((after, saw.recv().unwrap()), (None, None));
    assert!(store.storage_entries(missing).await.unwrap().is_empty());
    assert_eq!(store.storage_get(missing, "k").await.unwrap(), None);
}

/// Increments of one entry from many tasks at once, through each of `stores` (handles on one
/// database, as several processes have): none is lost, and each saw a different value.
async fn concurrent_increments(stores: Vec<Arc<dyn Store>>) {
    const TASKS_PER_STORE: usize = 8;
    const ROUNDS: usize = 25;
    let (_, f) = app_with_flow(&*stores[0]).await;
    let flow_id = id(&f).to_owned();
    let mut tasks = tokio::task::JoinSet::new();
    for store in &stores {
        for _ in 0..TASKS_PER_STORE {
            let (store, flow_id) = (store.clone(), flow_id.clone());
            tasks.spawn(async move {
                let mut seen = Vec::new();
                for _ in 0..ROUNDS {
                    for space in [StorageSpace::Storage, StorageSpace::NodeState] {
                        let after = store
                            .storage_modify(&flow_id, "count", space, add_one(), BIG)
                            .await
                            .unwrap();
                        seen.push((space, after));
                    }
                }
                seen
            });
        }
    }
    let mut seen = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        seen.extend(joined.unwrap());
    }
    let total = (stores.len() * TASKS_PER_STORE * ROUNDS) as i64;
    for space in [StorageSpace::Storage, StorageSpace::NodeState] {
        let mut values: Vec<i64> = seen
            .iter()
            .filter(|(seen_in, _)| *seen_in == space)
            .filter_map(|(_, after)| after.as_ref().and_then(Value::as_i64))
            .collect();
        values.sort_unstable();
        assert_eq!(values, (1..=total).collect::<Vec<_>>(), "{space:?}");
    }
    for store in &stores {
        assert_eq!(
            store.storage_get(&flow_id, "count").await.unwrap(),
            Some(json!(total))
        );
        assert_eq!(
            store.node_states(&flow_id).await.unwrap()["count"],
            json!(total)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Run accounting
// ---------------------------------------------------------------------------------------------

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
/// 2023-11-15T00:00:00Z: aligned to the day, so to every resolution used here.
const T0: i64 = 1_700_006_400_000;
const RING: usize = 1_000;

fn named(v: &Value) -> RunVersion {
    RunVersion::Named {
        id: id(v).to_owned(),
        name: v["version"].as_str().expect("version name").to_owned(),
    }
}

/// A run with one completed path, no errors and no device.
fn run(flow: &Value, version: RunVersion, started_ms: i64, wall_time_ms: u64) -> RunRecord {
    RunRecord {
        once_id: None,
        application_id: flow["applicationId"].as_str().unwrap().to_owned(),
        flow_id: id(flow).to_owned(),
        version,
        device_id: None,
        started_ms,
        wall_time_ms,
        paths_completed: 1,
        paths_failed: 0,
        errors: Vec::new(),
    }
}

fn on_device(mut run: RunRecord, device: &str) -> RunRecord {
    run.device_id = Some(device.to_owned());
    run
}

fn paths(mut run: RunRecord, completed: u64, failed: u64) -> RunRecord {
    run.paths_completed = completed;
    run.paths_failed = failed;
    run
}

fn run_error(time_ms: i64, node: Option<&str>, name: &str, message: &str) -> RunError {
    RunError {
        time_ms,
        node_id: node.map(str::to_owned),
        node_label: node.map(|n| format!("label of {n}")),
        name: name.to_owned(),
        message: message.to_owned(),
    }
}

fn with_errors(mut run: RunRecord, errors: Vec<RunError>) -> RunRecord {
    run.errors = errors;
    run
}

fn bucket(time_ms: i64, run_count: u64, completed: u64, failed: u64, wall: u64) -> StatsBucket {
    StatsBucket {
        time_ms,
        run_count,
        paths_completed: completed,
        paths_failed: failed,
        wall_time_ms: wall,
    }
}

fn empty(time_ms: i64) -> StatsBucket {
    bucket(time_ms, 0, 0, 0, 0)
}

fn any_run() -> RunFilter {
    RunFilter::default()
}

fn only(version: RunVersion) -> RunFilter {
    RunFilter {
        version: Some(version),
        device_id: None,
    }
}

fn device(device_id: &str) -> RunFilter {
    RunFilter {
        version: None,
        device_id: Some(device_id.to_owned()),
    }
}

fn limit_exceeded<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    match result {
        Err(StoreError::LimitExceeded(_)) => {}
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
}

async fn accounting_stats(store: &dyn Store) {
    let (_, f) = app_with_flow(store).await;
    let (_, other) = app_with_flow(store).await;
    let v1 = version(&f, "v1");
    store.insert_version(&v1, false).await.unwrap();
    let (dev, v1) = (RunVersion::Develop, named(&v1));
    let flow_id = id(&f);

    store
        .record_runs(
            &[
                // Minute 0: two develop runs.
                paths(run(&f, dev.clone(), T0, 100), 2, 0),
                paths(run(&f, dev.clone(), T0 + 30_000, 50), 1, 1),
                // Minute 1, and the last millisecond of minute 1.
                run(&f, dev.clone(), T0 + MINUTE + 1_000, 10),
                run(&f, dev.clone(), T0 + 2 * MINUTE - 1, 5),
                // Minute 2: v1 on a device.
                on_device(paths(run(&f, v1.clone(), T0 + 2 * MINUTE, 200), 3, 0), "d1"),
                // Hour 1: v1 on another device.
                on_device(run(&f, v1.clone(), T0 + HOUR + 5 * MINUTE, 7), "d2"),
                // Hour 3: develop.
                paths(run(&f, dev.clone(), T0 + 3 * HOUR + 5_000, 1_000), 0, 4),
                // Another flow, same times: never counted for this one.
                run(&other, dev.clone(), T0, 999),
                run(&other, dev.clone(), T0 + HOUR, 999),
            ],
            RING,
        )
        .await
        .unwrap();

    // One-minute resolution, with the empty minute after the v1 run filled with zeros.
    let minutes = store
        .stats(flow_id, &any_run(), T0, T0 + 4 * MINUTE, MINUTE)
        .await
        .unwrap();
    assert_eq!(
        minutes,
        [
            bucket(T0, 2, 3, 1, 150),
            bucket(T0 + MINUTE, 2, 2, 0, 15),
            bucket(T0 + 2 * MINUTE, 1, 3, 0, 200),
            empty(T0 + 3 * MINUTE),
        ]
    );

    // One-hour resolution: hour 2 is empty.
    let hours = store
        .stats(flow_id, &any_run(), T0, T0 + 4 * HOUR, HOUR)
        .await
        .unwrap();
    assert_eq!(
        hours,
        [
            bucket(T0, 5, 8, 1, 365),
            bucket(T0 + HOUR, 1, 1, 0, 7),
            empty(T0 + 2 * HOUR),
            bucket(T0 + 3 * HOUR, 1, 0, 4, 1_000),
        ]
    );

    // A window with nothing in it is all zeros, one bucket per resolution.
    let before = store
        .stats(flow_id, &any_run(), T0 - 24 * HOUR, T0, HOUR)
        .await
        .unwrap();
    assert_eq!(before.len(), 24);
    assert!(before
        .iter()
        .all(|b| b.run_count == 0 && b.wall_time_ms == 0));
    assert_eq!(before[0].time_ms, T0 - 24 * HOUR);
    assert_eq!(before[23].time_ms, T0 - HOUR);
    // A flow without runs, and a flow that does not exist, answer zeros too.
    let (_, idle) = app_with_flow(store).await;
    for flow_id in [id(&idle).to_owned(), new_id()] {
        let buckets = store
            .stats(&flow_id, &any_run(), T0, T0 + 2 * HOUR, HOUR)
            .await
            .unwrap();
        assert_eq!(buckets, [empty(T0), empty(T0 + HOUR)]);
    }

    // Buckets are aligned to the resolution, not to the window: the first holds `start`, the
    // last holds the instant before `end`, and each counts its whole span.
    let unaligned = store
        .stats(
            flow_id,
            &any_run(),
            T0 + 30 * MINUTE,
            T0 + 3 * HOUR + 1,
            HOUR,
        )
        .await
        .unwrap();
    assert_eq!(
        unaligned,
        [
            bucket(T0, 5, 8, 1, 365),
            bucket(T0 + HOUR, 1, 1, 0, 7),
            empty(T0 + 2 * HOUR),
            bucket(T0 + 3 * HOUR, 1, 0, 4, 1_000),
        ]
    );
    // `end` itself is excluded: a window ending on a boundary stops before that bucket.
    let hours: Vec<i64> = store
        .stats(flow_id, &any_run(), T0 + 1, T0 + 3 * HOUR, HOUR)
        .await
        .unwrap()
        .iter()
        .map(|b| b.time_ms)
        .collect();
    assert_eq!(hours, [T0, T0 + HOUR, T0 + 2 * HOUR]);
    // A resolution that is not a divisor of an hour still aligns to the epoch.
    let odd = store
        .stats(flow_id, &any_run(), T0, T0 + 3 * MINUTE, 7 * MINUTE)
        .await
        .unwrap();
    let first = T0.div_euclid(7 * MINUTE) * 7 * MINUTE;
    assert_eq!(odd.len(), 1);
    assert_eq!(odd[0].time_ms, first);
    assert_eq!(odd[0].time_ms % (7 * MINUTE), 0);

    // Version filters: develop only, a named version by id, and all (above).
    let develop = store
        .stats(flow_id, &only(dev.clone()), T0, T0 + 4 * HOUR, HOUR)
        .await
        .unwrap();
    assert_eq!(
        develop,
        [
            bucket(T0, 4, 5, 1, 165),
            empty(T0 + HOUR),
            empty(T0 + 2 * HOUR),
            bucket(T0 + 3 * HOUR, 1, 0, 4, 1_000),
        ]
    );
    let by_id = store
        .stats(flow_id, &only(v1.clone()), T0, T0 + 2 * HOUR, HOUR)
        .await
        .unwrap();
    assert_eq!(
        by_id,
        [bucket(T0, 1, 3, 0, 200), bucket(T0 + HOUR, 1, 1, 0, 7)]
    );
    // Matched by id: the name given with it does not matter.
    let RunVersion::Named { id: v1_id, .. } = &v1 else {
        unreachable!()
    };
    let renamed = RunVersion::Named {
        id: v1_id.clone(),
        name: "whatever".into(),
    };
    assert_eq!(
        store
            .stats(flow_id, &only(renamed), T0, T0 + 2 * HOUR, HOUR)
            .await
            .unwrap(),
        by_id
    );
    let unknown = RunVersion::Named {
        id: new_id(),
        name: "v1".into(),
    };
    assert_eq!(
        store
            .stats(flow_id, &only(unknown), T0, T0 + 2 * HOUR, HOUR)
            .await
            .unwrap(),
        [empty(T0), empty(T0 + HOUR)]
    );

    // Device filter, alone and with a version.
    assert_eq!(
        store
            .stats(flow_id, &device("d1"), T0, T0 + 2 * HOUR, HOUR)
            .await
            .unwrap(),
        [bucket(T0, 1, 3, 0, 200), empty(T0 + HOUR)]
    );
    assert_eq!(
        store
            .stats(flow_id, &device("d2"), T0, T0 + 2 * HOUR, HOUR)
            .await
            .unwrap(),
        [empty(T0), bucket(T0 + HOUR, 1, 1, 0, 7)]
    );
    let develop_on_d1 = RunFilter {
        version: Some(dev.clone()),
        device_id: Some("d1".into()),
    };
    assert_eq!(
        store
            .stats(flow_id, &develop_on_d1, T0, T0 + 2 * HOUR, HOUR)
            .await
            .unwrap(),
        [empty(T0), empty(T0 + HOUR)]
    );

    // A later batch adds to the same minute rather than replacing it.
    store
        .record_runs(
            &[
                paths(run(&f, dev.clone(), T0 + 59_999, 1), 0, 0),
                on_device(run(&f, dev.clone(), T0 + 10, 2), "d1"),
            ],
            RING,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .stats(flow_id, &any_run(), T0, T0 + MINUTE, MINUTE)
            .await
            .unwrap(),
        [bucket(T0, 4, 4, 1, 153)]
    );
    assert_eq!(
        store
            .stats(flow_id, &device("d1"), T0, T0 + MINUTE, MINUTE)
            .await
            .unwrap(),
        [bucket(T0, 1, 1, 0, 2)]
    );
    // The other flow kept its own.
    assert_eq!(
        store
            .stats(id(&other), &any_run(), T0, T0 + 2 * HOUR, HOUR)
            .await
            .unwrap(),
        [bucket(T0, 1, 1, 0, 999), bucket(T0 + HOUR, 1, 1, 0, 999)]
    );

    // Empty and reversed windows have no buckets; bad resolutions and too many buckets are refused.
    assert!(store
        .stats(flow_id, &any_run(), T0, T0, HOUR)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .stats(flow_id, &any_run(), T0 + HOUR, T0, HOUR)
        .await
        .unwrap()
        .is_empty());
    limit_exceeded(store.stats(flow_id, &any_run(), T0, T0 + HOUR, 0).await);
    limit_exceeded(store.stats(flow_id, &any_run(), T0, T0 + HOUR, -HOUR).await);
    // 30 days at 1 ms is 2.6 billion buckets.
    limit_exceeded(
        store
            .stats(flow_id, &any_run(), T0, T0 + 30 * 24 * HOUR, 1)
            .await,
    );
    limit_exceeded(
        store
            .stats(flow_id, &any_run(), i64::MIN, i64::MAX, 1)
            .await,
    );
    limit_exceeded(
        store
            .stats(flow_id, &any_run(), T0, T0 + 100_001 * MINUTE, MINUTE)
            .await,
    );
    // Exactly the most buckets allowed is fine.
    let most = store
        .stats(flow_id, &any_run(), T0, T0 + 100_000 * MINUTE, MINUTE)
        .await
        .unwrap();
    assert_eq!(most.len(), 100_000);
    assert_eq!(most.iter().map(|b| b.run_count).sum::<u64>(), 9);
}

async fn accounting_errors(store: &dyn Store) {
    let (_, f) = app_with_flow(store).await;
    let (_, other) = app_with_flow(store).await;
    let v1 = version(&f, "v1");
    store.insert_version(&v1, false).await.unwrap();
    let (dev, v1) = (RunVersion::Develop, named(&v1));
    let flow_id = id(&f);

    let e = |n: i64, node: Option<&str>| {
        run_error(
            T0 + n * 1_000,
            node,
            "FunctionNodeError",
            &format!("error {n}"),
        )
    };
    store
        .record_runs(
            &[
                with_errors(
                    run(&f, dev.clone(), T0, 10),
                    vec![e(0, Some("n0")), e(1, None)],
                ),
                with_errors(
                    on_device(run(&f, v1.clone(), T0 + 2_000, 10), "d1"),
                    vec![e(2, Some("n2"))],
                ),
                // Errors need not arrive in time order.
                with_errors(run(&f, dev.clone(), T0 + 4_000, 10), vec![e(4, Some("n4"))]),
                with_errors(run(&f, v1.clone(), T0 + 3_000, 10), vec![e(3, None)]),
                run(&f, dev.clone(), T0 + 5_000, 10),
                with_errors(run(&other, dev.clone(), T0, 10), vec![e(0, Some("x"))]),
            ],
            RING,
        )
        .await
        .unwrap();
    let messages = |errors: &[StoredRunError]| -> Vec<String> {
        errors.iter().map(|e| e.error.message.clone()).collect()
    };

    // Newest first by default, oldest first when asked.
    let all = store
        .errors(flow_id, &any_run(), T0, T0 + HOUR, 100, false)
        .await
        .unwrap();
    assert_eq!(
        messages(&all),
        ["error 4", "error 3", "error 2", "error 1", "error 0"]
    );
    let ascending = store
        .errors(flow_id, &any_run(), T0, T0 + HOUR, 100, true)
        .await
        .unwrap();
    assert_eq!(
        messages(&ascending),
        ["error 0", "error 1", "error 2", "error 3", "error 4"]
    );
    // Everything comes back as recorded, with the run's version and device.
    assert_eq!(
        ascending[0],
        StoredRunError {
            version: dev.clone(),
            device_id: None,
            error: e(0, Some("n0")),
        }
    );
    assert_eq!(ascending[1].error, e(1, None));
    assert_eq!(
        ascending[2],
        StoredRunError {
            version: v1.clone(),
            device_id: Some("d1".into()),
            error: e(2, Some("n2")),
        }
    );
    assert_eq!(
        ascending[2].error.node_label.as_deref(),
        Some("label of n2")
    );

    // The window includes both ends.
    let window = store
        .errors(flow_id, &any_run(), T0 + 1_000, T0 + 3_000, 100, true)
        .await
        .unwrap();
    assert_eq!(messages(&window), ["error 1", "error 2", "error 3"]);
    let instant = store
        .errors(flow_id, &any_run(), T0 + 2_000, T0 + 2_000, 100, true)
        .await
        .unwrap();
    assert_eq!(messages(&instant), ["error 2"]);
    assert!(store
        .errors(flow_id, &any_run(), T0 + 4_001, T0 + HOUR, 100, true)
        .await
        .unwrap()
        .is_empty());

    // The limit keeps the first in the chosen order.
    let newest = store
        .errors(flow_id, &any_run(), T0, T0 + HOUR, 2, false)
        .await
        .unwrap();
    assert_eq!(messages(&newest), ["error 4", "error 3"]);
    let oldest = store
        .errors(flow_id, &any_run(), T0, T0 + HOUR, 2, true)
        .await
        .unwrap();
    assert_eq!(messages(&oldest), ["error 0", "error 1"]);
    assert!(store
        .errors(flow_id, &any_run(), T0, T0 + HOUR, 0, false)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .errors(flow_id, &any_run(), T0, T0 + HOUR, u64::MAX, false)
            .await
            .unwrap()
            .len(),
        5
    );

    // Version and device filters.
    let develop = store
        .errors(flow_id, &only(dev.clone()), T0, T0 + HOUR, 100, true)
        .await
        .unwrap();
    assert_eq!(messages(&develop), ["error 0", "error 1", "error 4"]);
    let named = store
        .errors(flow_id, &only(v1.clone()), T0, T0 + HOUR, 100, true)
        .await
        .unwrap();
    assert_eq!(messages(&named), ["error 2", "error 3"]);
    let on_d1 = store
        .errors(flow_id, &device("d1"), T0, T0 + HOUR, 100, true)
        .await
        .unwrap();
    assert_eq!(messages(&on_d1), ["error 2"]);
    let develop_on_d1 = RunFilter {
        version: Some(dev.clone()),
        device_id: Some("d1".into()),
    };
    assert!(store
        .errors(flow_id, &develop_on_d1, T0, T0 + HOUR, 100, true)
        .await
        .unwrap()
        .is_empty());

    // Errors are per flow.
    let theirs = store
        .errors(id(&other), &any_run(), T0, T0 + HOUR, 100, true)
        .await
        .unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].error.node_id.as_deref(), Some("x"));
    assert!(store
        .errors(&new_id(), &any_run(), T0, T0 + HOUR, 100, true)
        .await
        .unwrap()
        .is_empty());
}

async fn accounting_logs(store: &dyn Store) {
    let (_, f) = app_with_flow(store).await;
    let (_, other) = app_with_flow(store).await;
    let v1 = version(&f, "v1");
    store.insert_version(&v1, false).await.unwrap();
    let (dev, v1) = (RunVersion::Develop, named(&v1));
    let flow_id = id(&f);

    // Ten runs in one batch, out of order, with a ring of 3: the three newest stay.
    let starts = [5, 2, 9, 0, 7, 1, 8, 3, 6, 4];
    let runs: Vec<RunRecord> = starts
        .iter()
        .map(|&n| {
            let version = if n % 2 == 0 { dev.clone() } else { v1.clone() };
            paths(run(&f, version, T0 + n * 1_000, n as u64 * 10), n as u64, 1)
        })
        .collect();
    store.record_runs(&runs, 3).await.unwrap();
    let logs = store.logs(flow_id, None, None, 100).await.unwrap();
    let times = |logs: &[RunLogEntry]| -> Vec<i64> {
        logs.iter().map(|l| (l.started_ms - T0) / 1_000).collect()
    };
    assert_eq!(times(&logs), [9, 8, 7]);
    assert_eq!(
        logs[0],
        RunLogEntry {
            version: v1.clone(),
            started_ms: T0 + 9_000,
            wall_time_ms: 90,
            paths_completed: 9,
            paths_failed: 1,
            errors: Vec::new(),
        }
    );
    assert_eq!(logs[1].version, dev);

    // One batch at a time: the ring still holds the newest three.
    for n in 10..20 {
        store
            .record_runs(&[run(&f, dev.clone(), T0 + n * 1_000, 1)], 3)
            .await
            .unwrap();
        assert_eq!(store.logs(flow_id, None, None, 100).await.unwrap().len(), 3);
    }
    assert_eq!(
        times(&store.logs(flow_id, None, None, 100).await.unwrap()),
        [19, 18, 17]
    );
    // A late run older than the whole ring is trimmed at once.
    store
        .record_runs(&[run(&f, dev.clone(), T0, 1)], 3)
        .await
        .unwrap();
    assert_eq!(
        times(&store.logs(flow_id, None, None, 100).await.unwrap()),
        [19, 18, 17]
    );
    // Runs starting at the same millisecond: the later recorded counts as newer.
    store
        .record_runs(
            &[
                run(&f, dev.clone(), T0 + 30_000, 1),
                run(&f, v1.clone(), T0 + 30_000, 2),
            ],
            3,
        )
        .await
        .unwrap();
    let logs = store.logs(flow_id, None, None, 100).await.unwrap();
    assert_eq!(times(&logs), [30, 30, 19]);
    assert_eq!(
        logs.iter().map(|l| l.wall_time_ms).collect::<Vec<_>>(),
        [2, 1, 1]
    );

    // The ring is per flow: filling another flow's trims nothing here.
    let theirs: Vec<RunRecord> = (0..5)
        .map(|n| run(&other, dev.clone(), T0 + n * 1_000, 1))
        .collect();
    store.record_runs(&theirs, 2).await.unwrap();
    assert_eq!(store.logs(flow_id, None, None, 100).await.unwrap().len(), 3);
    assert_eq!(
        times(&store.logs(id(&other), None, None, 100).await.unwrap()),
        [4, 3]
    );

    // A bigger ring, then since, limit and version filters.
    let (_, g) = app_with_flow(store).await;
    let g_id = id(&g);
    let runs: Vec<RunRecord> = (0..10)
        .map(|n| {
            let version = if n < 5 { dev.clone() } else { v1.clone() };
            let errors = if n == 6 {
                vec![
                    run_error(T0 + 6_100, Some("a"), "ThrowError", "first"),
                    run_error(T0 + 6_200, None, "TimeoutError", "second"),
                ]
            } else {
                Vec::new()
            };
            with_errors(run(&g, version, T0 + n * 1_000, 1), errors)
        })
        .collect();
    store.record_runs(&runs, RING).await.unwrap();
    let logs = store.logs(g_id, None, None, 100).await.unwrap();
    assert_eq!(times(&logs), [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    // A run's errors come back with its entry, in order.
    assert_eq!(logs[3].errors, runs[6].errors);
    assert!(logs
        .iter()
        .enumerate()
        .all(|(i, l)| i == 3 || l.errors.is_empty()));
    // Since is inclusive.
    let since = store.logs(g_id, None, Some(T0 + 7_000), 100).await.unwrap();
    assert_eq!(times(&since), [9, 8, 7]);
    let limited = store.logs(g_id, None, None, 4).await.unwrap();
    assert_eq!(times(&limited), [9, 8, 7, 6]);
    let limited = store.logs(g_id, None, Some(T0 + 2_000), 2).await.unwrap();
    assert_eq!(times(&limited), [9, 8]);
    assert!(store.logs(g_id, None, None, 0).await.unwrap().is_empty());
    let develop = store.logs(g_id, Some(&dev), None, 100).await.unwrap();
    assert_eq!(times(&develop), [4, 3, 2, 1, 0]);
    let named = store
        .logs(g_id, Some(&v1), Some(T0 + 8_000), 100)
        .await
        .unwrap();
    assert_eq!(times(&named), [9, 8]);
    assert!(store
        .logs(&new_id(), None, None, 100)
        .await
        .unwrap()
        .is_empty());

    // A ring of zero keeps no logs, but stats and errors are still recorded.
    let (_, h) = app_with_flow(store).await;
    store
        .record_runs(
            &[with_errors(
                run(&h, dev.clone(), T0, 1),
                vec![run_error(T0, None, "ThrowError", "kept")],
            )],
            0,
        )
        .await
        .unwrap();
    assert!(store
        .logs(id(&h), None, None, 100)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .stats(id(&h), &any_run(), T0, T0 + MINUTE, MINUTE)
            .await
            .unwrap()[0]
            .run_count,
        1
    );
    assert_eq!(
        store
            .errors(id(&h), &any_run(), T0, T0, 10, false)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// A run a shared queue delivered twice is counted once: its id is remembered across batches
/// and within one, while runs without an id always count.
async fn accounting_counts_a_run_id_once(store: &dyn Store) {
    let (_, f) = app_with_flow(store).await;
    let flow_id = id(&f);
    let once = |run_id: &str| {
        let mut record = with_errors(
            run(&f, RunVersion::Develop, T0, 5),
            vec![run_error(T0, None, "ThrowError", "again")],
        );
        record.once_id = Some(run_id.to_owned());
        record
    };
    let plain = run(&f, RunVersion::Develop, T0, 5);
    store
        .record_runs(&[once("r1"), once("r2"), once("r1"), plain.clone()], RING)
        .await
        .unwrap();
    // A later batch reporting r2 again (a node died before acknowledging its job), with a new
    // run r3 and a run without an id.
    store
        .record_runs(&[once("r2"), once("r3"), plain], RING)
        .await
        .unwrap();
    let buckets = store
        .stats(flow_id, &any_run(), T0, T0 + MINUTE - 1, MINUTE)
        .await
        .unwrap();
    let runs: u64 = buckets.iter().map(|b| b.run_count).sum();
    assert_eq!(
        runs, 5,
        "r1, r2, r3 once each, and both plain runs: {buckets:?}"
    );
    let errors = store
        .errors(flow_id, &any_run(), T0 - MINUTE, T0 + MINUTE, 100, true)
        .await
        .unwrap();
    assert_eq!(errors.len(), 3, "one error per counted run: {errors:?}");
    let logs = store.logs(flow_id, None, None, 100).await.unwrap();
    assert_eq!(logs.len(), 5, "{logs:?}");
}

async fn accounting_run_summary(store: &dyn Store) {
    let (_, f) = app_with_flow(store).await;
    let v1 = version(&f, "v1");
    let v2 = version(&f, "v2");
    store.insert_version(&v1, false).await.unwrap();
    store.insert_version(&v2, false).await.unwrap();
    let (dev, v1, v2) = (RunVersion::Develop, named(&v1), named(&v2));
    let flow_id = id(&f);
    let err = |t: i64| run_error(t, None, "ThrowError", "boom");

    assert_eq!(
        store.run_summary(flow_id, T0).await.unwrap(),
        RunSummary::default()
    );
    store
        .record_runs(
            &[
                // Before the window.
                with_errors(run(&f, dev.clone(), T0 - HOUR, 1), vec![err(T0 - HOUR)]),
                with_errors(
                    run(&f, v2.clone(), T0 - 2 * MINUTE, 1),
                    vec![err(T0 - MINUTE)],
                ),
                // In it.
                with_errors(run(&f, dev.clone(), T0, 1), vec![err(T0), err(T0 + 1)]),
                run(&f, dev.clone(), T0 + 5 * MINUTE, 1),
                on_device(run(&f, dev.clone(), T0 + HOUR, 1), "d1"),
                run(&f, v1.clone(), T0 + 2 * HOUR, 1),
                with_errors(
                    run(&f, v1.clone(), T0 + 3 * HOUR, 1),
                    vec![err(T0 + 3 * HOUR)],
                ),
                // Errors but no runs in the window (the run started just before).
                with_errors(run(&f, v2.clone(), T0 - MINUTE, 1), vec![err(T0 + 30_000)]),
            ],
            RING,
        )
        .await
        .unwrap();

    let summary = store.run_summary(flow_id, T0).await.unwrap();
    assert_eq!(
        summary,
        RunSummary {
            run_count: 5,
            error_count: 4,
            by_version: vec![
                ("develop".into(), 3, 2),
                ("v1".into(), 2, 1),
                ("v2".into(), 0, 1),
            ],
        }
    );
    let everything = store.run_summary(flow_id, T0 - 24 * HOUR).await.unwrap();
    assert_eq!(everything.run_count, 8);
    assert_eq!(everything.error_count, 6);
    assert_eq!(
        everything.by_version,
        [
            ("develop".to_owned(), 4, 3),
            ("v1".to_owned(), 2, 1),
            ("v2".to_owned(), 2, 2),
        ]
    );
    assert_eq!(
        store.run_summary(flow_id, T0 + 4 * HOUR).await.unwrap(),
        RunSummary::default()
    );
    // Runs count by the minute they started in, so a window starting inside a minute includes
    // that minute's runs; errors count by their own time.
    let mid_minute = store.run_summary(flow_id, T0 + 1).await.unwrap();
    assert_eq!(mid_minute.run_count, 5);
    assert_eq!(mid_minute.error_count, 3);
    assert_eq!(
        store.run_summary(&new_id(), T0 - 24 * HOUR).await.unwrap(),
        RunSummary::default()
    );
}

async fn accounting_retention(store: &dyn Store) {
    let (_, f) = app_with_flow(store).await;
    let flow_id = id(&f);
    let dev = RunVersion::Develop;
    let err = |t: i64| run_error(t, None, "ThrowError", "boom");
    // Days 0..4, each a run with an error.
    let runs: Vec<RunRecord> = (0..4)
        .map(|day| {
            let t = T0 + day * 24 * HOUR;
            with_errors(run(&f, dev.clone(), t, 1), vec![err(t)])
        })
        .collect();
    store.record_runs(&runs, RING).await.unwrap();

    assert_eq!(store.delete_accounting_before(T0).await.unwrap(), 0);
    // Removes day 0 and day 1: a stats row, an error and a log each.
    let cutoff = T0 + 2 * 24 * HOUR;
    assert_eq!(store.delete_accounting_before(cutoff).await.unwrap(), 6);
    assert_eq!(store.delete_accounting_before(cutoff).await.unwrap(), 0);
    let days = store
        .stats(flow_id, &any_run(), T0, T0 + 4 * 24 * HOUR, 24 * HOUR)
        .await
        .unwrap();
    assert_eq!(
        days.iter().map(|b| b.run_count).collect::<Vec<_>>(),
        [0, 0, 1, 1]
    );
    let errors = store
        .errors(flow_id, &any_run(), T0, T0 + 4 * 24 * HOUR, 100, true)
        .await
        .unwrap();
    assert_eq!(
        errors.iter().map(|e| e.error.time_ms).collect::<Vec<_>>(),
        [cutoff, cutoff + 24 * HOUR]
    );
    let logs = store.logs(flow_id, None, None, 100).await.unwrap();
    assert_eq!(
        logs.iter().map(|l| l.started_ms).collect::<Vec<_>>(),
        [cutoff + 24 * HOUR, cutoff]
    );

    // A stats minute stays while any of it is at or after the cutoff; errors and logs go by
    // their own time.
    let late = cutoff + 24 * HOUR + 30_000;
    store
        .record_runs(
            &[with_errors(run(&f, dev.clone(), late, 1), vec![err(late)])],
            RING,
        )
        .await
        .unwrap();
    // Removes day 2's three rows, and the errors and logs of day 3 and of the late run (all
    // before `late + 1`); the minute holding both day 3's run and the late one straddles the
    // cutoff and stays.
    assert_eq!(
        store.delete_accounting_before(late + 1).await.unwrap(),
        3 + 2 + 2
    );
    let summary = store.run_summary(flow_id, T0).await.unwrap();
    assert_eq!(summary.run_count, 2);
    assert_eq!(summary.error_count, 0);
    assert!(store
        .logs(flow_id, None, None, 100)
        .await
        .unwrap()
        .is_empty());
}

async fn accounting_skips_deleted_flows(store: &dyn Store) {
    let (app, kept) = app_with_flow(store).await;
    let gone = flow(id(&app), "gone", "cloud");
    store.insert_flow(&gone).await.unwrap();
    assert!(store.delete_flow(id(&app), id(&gone)).await.unwrap());
    let mut unknown = run(&kept, RunVersion::Develop, T0, 1);
    unknown.flow_id = new_id();
    let err = |t: i64| run_error(t, None, "ThrowError", "boom");

    // Runs of a deleted and of a never-known flow are dropped; the rest of the batch lands.
    store
        .record_runs(
            &[
                with_errors(run(&gone, RunVersion::Develop, T0, 1), vec![err(T0)]),
                with_errors(run(&kept, RunVersion::Develop, T0, 5), vec![err(T0)]),
                unknown.clone(),
                run(&kept, RunVersion::Develop, T0 + 1, 6),
            ],
            RING,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .stats(id(&kept), &any_run(), T0, T0 + MINUTE, MINUTE)
            .await
            .unwrap(),
        [bucket(T0, 2, 2, 0, 11)]
    );
    assert_eq!(
        store.logs(id(&kept), None, None, 10).await.unwrap().len(),
        2
    );
    assert_eq!(
        store
            .errors(id(&kept), &any_run(), T0, T0, 10, false)
            .await
            .unwrap()
            .len(),
        1
    );
    for flow_id in [id(&gone), unknown.flow_id.as_str()] {
        assert!(store
            .logs(flow_id, None, None, 10)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            store.run_summary(flow_id, 0).await.unwrap(),
            RunSummary::default()
        );
    }
    // A batch of nothing but such runs, and an empty batch, succeed too.
    store
        .record_runs(&[run(&gone, RunVersion::Develop, T0, 1), unknown], RING)
        .await
        .unwrap();
    store.record_runs(&[], RING).await.unwrap();
    assert_eq!(store.run_summary(id(&kept), 0).await.unwrap().run_count, 2);
}

async fn accounting_cascades(store: &dyn Store) {
    let (app, f) = app_with_flow(store).await;
    let sibling = flow(id(&app), "sibling", "cloud");
    store.insert_flow(&sibling).await.unwrap();
    let (_, other) = app_with_flow(store).await;
    let err = |t: i64| run_error(t, None, "ThrowError", "boom");
    let runs: Vec<RunRecord> = [&f, &sibling, &other]
        .into_iter()
        .map(|fl| with_errors(run(fl, RunVersion::Develop, T0, 1), vec![err(T0)]))
        .collect();
    store.record_runs(&runs, RING).await.unwrap();

    let recorded = |summary: RunSummary| (summary.run_count, summary.error_count);
    // Deleting a flow takes its accounting with it. The same flow document inserted again (as an
    // import would) finds nothing left behind.
    assert!(store.delete_flow(id(&app), id(&f)).await.unwrap());
    store.insert_flow(&f).await.unwrap();
    assert_eq!(
        recorded(store.run_summary(id(&f), 0).await.unwrap()),
        (0, 0)
    );
    assert!(store.logs(id(&f), None, None, 10).await.unwrap().is_empty());
    assert_eq!(
        store
            .stats(id(&f), &any_run(), T0, T0 + MINUTE, MINUTE)
            .await
            .unwrap(),
        [empty(T0)]
    );
    assert_eq!(
        recorded(store.run_summary(id(&sibling), 0).await.unwrap()),
        (1, 1)
    );

    // Deleting an application takes its flows' accounting.
    assert!(store.delete_application(id(&app)).await.unwrap());
    store.insert_application(&app).await.unwrap();
    store.insert_flow(&sibling).await.unwrap();
    assert_eq!(
        recorded(store.run_summary(id(&sibling), 0).await.unwrap()),
        (0, 0)
    );
    assert!(store
        .errors(id(&sibling), &any_run(), 0, i64::MAX, 10, false)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .logs(id(&sibling), None, None, 10)
        .await
        .unwrap()
        .is_empty());

    // Other applications keep theirs; retention finds only their rows.
    assert_eq!(
        recorded(store.run_summary(id(&other), 0).await.unwrap()),
        (1, 1)
    );
    assert_eq!(store.delete_accounting_before(i64::MAX).await.unwrap(), 3);
}

/// A month of one run a minute, recorded the way the engine would (about a thousand runs a
/// batch), read back at one-hour resolution.
async fn accounting_month_of_minutes(store: &dyn Store) {
    const MINUTES: i64 = 30 * 24 * 60;
    let (_, f) = app_with_flow(store).await;
    let v1 = version(&f, "v1");
    store.insert_version(&v1, false).await.unwrap();
    let v1 = named(&v1);

    let started = std::time::Instant::now();
    let mut expected_wall = 0;
    let mut batch = Vec::with_capacity(1_000);
    for m in 0..MINUTES {
        let version = if m % 3 == 0 {
            v1.clone()
        } else {
            RunVersion::Develop
        };
        let wall = (m % 100) as u64;
        expected_wall += wall;
        batch.push(paths(
            run(&f, version, T0 + m * MINUTE + 17, wall),
            2,
            (m % 2) as u64,
        ));
        if batch.len() == 1_000 {
            store.record_runs(&batch, RING).await.unwrap();
            batch.clear();
        }
    }
    store.record_runs(&batch, RING).await.unwrap();
    let recorded = started.elapsed();

    let started = std::time::Instant::now();
    let hours = store
        .stats(id(&f), &any_run(), T0, T0 + MINUTES * MINUTE, HOUR)
        .await
        .unwrap();
    let queried = started.elapsed();
    // Again, with the pages cached.
    let started = std::time::Instant::now();
    let again = store
        .stats(id(&f), &any_run(), T0, T0 + MINUTES * MINUTE, HOUR)
        .await
        .unwrap();
    let queried_again = started.elapsed();
    assert_eq!(again, hours);
    let started = std::time::Instant::now();
    let named_hours = store
        .stats(id(&f), &only(v1.clone()), T0, T0 + MINUTES * MINUTE, HOUR)
        .await
        .unwrap();
    let queried_named = started.elapsed();
    let started = std::time::Instant::now();
    let summary = store.run_summary(id(&f), T0).await.unwrap();
    let summarised = started.elapsed();
    eprintln!(
        "month of minutes: record {MINUTES} runs {recorded:?}; stats 1 h all versions \
         {queried:?} (again {queried_again:?}), one version {queried_named:?}; run_summary \
         {summarised:?}"
    );

    assert_eq!(hours.len(), 720);
    for (i, b) in hours.iter().enumerate() {
        assert_eq!(b.time_ms, T0 + i as i64 * HOUR);
        assert_eq!(b.run_count, 60, "hour {i}");
        assert_eq!(b.paths_completed, 120, "hour {i}");
        assert_eq!(b.paths_failed, 30, "hour {i}");
    }
    assert_eq!(
        hours.iter().map(|b| b.run_count).sum::<u64>(),
        MINUTES as u64
    );
    assert_eq!(
        hours.iter().map(|b| b.wall_time_ms).sum::<u64>(),
        expected_wall
    );
    assert_eq!(named_hours.len(), 720);
    assert!(named_hours.iter().all(|b| b.run_count == 20));
    assert_eq!(summary.run_count, MINUTES as u64);
    assert_eq!(
        summary.by_version,
        [
            ("develop".to_owned(), (MINUTES - MINUTES / 3) as u64, 0),
            ("v1".to_owned(), (MINUTES / 3) as u64, 0),
        ]
    );
    // The ring held only the newest runs.
    let logs = store.logs(id(&f), None, None, u64::MAX).await.unwrap();
    assert_eq!(logs.len(), RING);
    assert_eq!(logs[0].started_ms, T0 + (MINUTES - 1) * MINUTE + 17);
}

// ---------------------------------------------------------------------------------------------
// Durability and concurrency
// ---------------------------------------------------------------------------------------------

/// Writes through one store, closes it, and reads everything back through a fresh one.
async fn survives_reopen<F, Fut>(open: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let store = open().await;
    let (app, f) = app_with_flow(&*store).await;
    let v = version(&f, "v1");
    store.insert_version(&v, false).await.unwrap();
    let t = token(Some(id(&app)), "durable", "durable-hash");
    store.insert_token(&t).await.unwrap();
    let owner = token(None, "owner", "owner-hash");
    store.insert_token(&owner).await.unwrap();
    set(&*store, id(&f), "é", &json!({"a": [1, 2]}), BIG).await;
    let before = store.storage_metadata(id(&f)).await.unwrap();
    store.close().await.unwrap();
    drop(store);

    let store = open().await;
    assert_eq!(
        store.get_application(id(&app)).await.unwrap(),
        Some(app.clone())
    );
    assert_eq!(
        store.get_flow(id(&app), id(&f)).await.unwrap(),
        Some(f.clone())
    );
    assert_eq!(
        store.get_version(id(&f), "v1").await.unwrap(),
        Some(v.clone())
    );
    assert_same_token(
        &store
            .token_by_hash("durable-hash")
            .await
            .unwrap()
            .expect("token"),
        &t,
    );
    assert_same_token(
        &store
            .get_token(id(&app), &t.id)
            .await
            .unwrap()
            .expect("token"),
        &t,
    );
    let users = store.user_tokens().await.unwrap();
    assert_eq!(users.len(), 1);
    assert_same_token(&users[0], &owner);
    assert_eq!(
        store.storage_entries(id(&f)).await.unwrap()["é"],
        json!({"a": [1, 2]})
    );
    assert_eq!(store.storage_metadata(id(&f)).await.unwrap(), before);

    // Still writable, and a second round trip keeps the new data too.
    let second = application("after reopen");
    store.insert_application(&second).await.unwrap();
    store.close().await.unwrap();
    drop(store);
    let store = open().await;
    assert_eq!(
        store.list_applications(&all()).await.unwrap().total_count,
        2
    );
    assert_eq!(
        store.get_application(id(&second)).await.unwrap(),
        Some(second)
    );
    store.close().await.unwrap();
}

/// Many tasks writing at once: every write lands, and caps hold under contention.
async fn concurrent_writes(store: Arc<dyn Store>) {
    const TASKS: usize = 50;
    let (app, f) = app_with_flow(&*store).await;
    let flow_id = id(&f).to_owned();

    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..TASKS {
        let (store, flow_id) = (store.clone(), flow_id.clone());
        tasks.spawn(async move {
            set(
                &*store,
                &flow_id,
                &format!("key-{n}"),
                &json!({ "n": n }),
                BIG,
            )
            .await;
            // Reads interleave with the writes.
            store.storage_metadata(&flow_id).await.unwrap();
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.unwrap();
    }
    let entries = store.storage_entries(&flow_id).await.unwrap();
    assert_eq!(entries.len(), TASKS);
    for n in 0..TASKS {
        assert_eq!(entries[&format!("key-{n}")], json!({ "n": n }));
    }
    let metadata = store.storage_metadata(&flow_id).await.unwrap();
    assert_eq!(metadata.keys_count, TASKS as u64);
    assert_eq!(metadata.memory_used, memory_of(&entries));

    // Different kinds of writes at once.
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..TASKS {
        let store = store.clone();
        let app_id = id(&app).to_owned();
        tasks.spawn(async move {
            store
                .insert_application(&application(&format!("concurrent {n}")))
                .await
                .unwrap();
            let f = flow(&app_id, &format!("flow {n}"), "cloud");
            store.insert_flow(&f).await.unwrap();
            store
                .insert_version(&version(&f, "v1"), false)
                .await
                .unwrap();
            store
                .insert_token(&token(Some(&app_id), "t", &format!("concurrent-{n}")))
                .await
                .unwrap();
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.unwrap();
    }
    assert_eq!(
        store
            .list_applications(&filtered(Column::Name, "concurrent *"))
            .await
            .unwrap()
            .total_count,
        TASKS as u64
    );
    assert_eq!(
        store
            .list_flows(id(&app), &filtered(Column::Name, "flow *"))
            .await
            .unwrap()
            .total_count,
        TASKS as u64
    );
    assert_eq!(
        store
            .list_tokens(id(&app), &all())
            .await
            .unwrap()
            .total_count,
        TASKS as u64
    );

    // Racing for the last slots: exactly max_keys writers win.
    let caps = StorageCaps {
        max_keys: 10,
        max_bytes: 1_000_000,
    };
    let (_, capped) = app_with_flow(&*store).await;
    let capped_id = id(&capped).to_owned();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..TASKS {
        let (store, flow_id) = (store.clone(), capped_id.clone());
        tasks.spawn(async move {
            store
                .storage_set(&flow_id, &format!("key-{n}"), "true", caps)
                .await
        });
    }
    let (mut stored, mut refused) = (0, 0);
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            Ok(()) => stored += 1,
            Err(StoreError::LimitExceeded(_)) => refused += 1,
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!((stored, refused), (10, TASKS - 10));
    assert_eq!(
        store.storage_metadata(&capped_id).await.unwrap().keys_count,
        10
    );
}

async fn storage_batches_apply_in_order(store: &dyn Store) {
    let (_, flow) = app_with_flow(store).await;
    let flow_id = id(&flow).to_owned();
    let set = |key: &str, value: &str| StorageWrite::Set {
        flow_id: flow_id.clone(),
        key: key.into(),
        value_json: value.into(),
    };
    store
        .storage_apply(&[set("a", "1"), set("b", "2"), set("a", "3")])
        .await
        .unwrap();
    assert_eq!(
        Value::Object(store.storage_entries(&flow_id).await.unwrap()),
        json!({"a": 3, "b": 2})
    );
    // A clear, then writes after it, in one batch: only the later writes remain.
    let batch = [
        StorageWrite::Clear {
            flow_id: flow_id.clone(),
        },
        set("c", "\"x\""),
        StorageWrite::Delete {
            flow_id: flow_id.clone(),
            key: "c".into(),
        },
        set("d", "[1]"),
    ];
    store.storage_apply(&batch).await.unwrap();
    assert_eq!(
        Value::Object(store.storage_entries(&flow_id).await.unwrap()),
        json!({"d": [1]})
    );
    // Writes for a flow that no longer exists are skipped; the rest of the batch lands.
    let gone = StorageWrite::Set {
        flow_id: "0123456789abcdef01234567".into(),
        key: "k".into(),
        value_json: "1".into(),
    };
    store
        .storage_apply(&[gone, set("e", "true")])
        .await
        .unwrap();
    let entries = store.storage_entries(&flow_id).await.unwrap();
    assert_eq!(entries.get("e"), Some(&json!(true)));
    assert!(store
        .storage_entries("0123456789abcdef01234567")
        .await
        .unwrap()
        .is_empty());
    store.storage_apply(&[]).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// The backends: every check above runs on each
// ---------------------------------------------------------------------------------------------

/// A store for one test, and what must outlive it (its temp dir or scratch schema), dropped
/// after it — also when the check panics.
struct FreshStore {
    store: Arc<dyn Store>,
    _home: Box<dyn Send>,
}

/// One `#[tokio::test]` per check, each on its own store from `$fresh().await`.
macro_rules! on_fresh_store {
    ($fresh:path) => {
        on_fresh_store!(
            $fresh;
            applications_crud,
            applications_sorting,
            applications_paging,
            applications_filters,
            case_folds_ascii_letters_only,
            deleting_an_application_cascades,
            tokens,
            flows,
            import_flows_is_all_or_nothing,
            versions,
            integrations,
            webhooks,
            storage_round_trip_and_metadata,
            storage_caps,
            storage_batches_apply_in_order,
            storage_get_and_modify,
            accounting_stats,
            accounting_errors,
            accounting_logs,
            accounting_run_summary,
        accounting_counts_a_run_id_once,
            accounting_retention,
            accounting_skips_deleted_flows,
            accounting_cascades,
            accounting_month_of_minutes,
        );
    };
    ($fresh:path; $($check:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            let fresh = $fresh().await;
            super::$check(&*fresh.store).await;
            fresh.store.close().await.expect("close");
        }
    )*};
}

mod sqlite {
    use super::{FreshStore, SqliteStore, Store};
    use std::path::Path;
    use std::sync::Arc;

    async fn open(dir: &Path) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(dir).await.expect("open the SQLite store"))
    }

    /// A store in a temp dir of its own.
    async fn fresh() -> FreshStore {
        let dir = tempfile::tempdir().expect("temp dir");
        FreshStore {
            store: open(dir.path()).await,
            _home: Box::new(dir),
        }
    }

    on_fresh_store!(fresh);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn survives_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        super::survives_reopen(|| open(dir.path())).await;
        // Closing folded the WAL into the one database file.
        let wal = dir.path().join("flowd.db-wal");
        assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writes() {
        let fresh = fresh().await;
        super::concurrent_writes(Arc::clone(&fresh.store)).await;
        fresh.store.close().await.expect("close");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_increments() {
        let fresh = fresh().await;
        super::concurrent_increments(vec![fresh.store.clone(), fresh.store.clone()]).await;
        fresh.store.close().await.expect("close");
    }
}

/// Each test has a schema of its own (dropped after it) in the database at
/// `FLOWD_TEST_POSTGRES`, by default `postgres://postgres@127.0.0.1:5432/test`. Without that
/// database the tests fail: they do not skip.
mod postgres {
    use super::{application, id, FreshStore, Store};
    use flowd_store::postgres::{PostgresStore, ScratchSchema};
    use flowd_store::{ApplicationStore, StoreError};
    use std::sync::Arc;

    fn url() -> String {
        ScratchSchema::test_database()
    }

    async fn scratch() -> ScratchSchema {
        ScratchSchema::for_tests().await
    }

    async fn open(schema: &str) -> Arc<dyn Store> {
        Arc::new(
            PostgresStore::connect_in_schema(&url(), schema)
                .await
                .expect("open the PostgreSQL store"),
        )
    }

    /// A store in a scratch schema of its own.
    async fn fresh() -> FreshStore {
        let schema = scratch().await;
        FreshStore {
            store: open(schema.name()).await,
            _home: Box::new(schema),
        }
    }

    on_fresh_store!(fresh);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn survives_reopen() {
        let schema = scratch().await;
        super::survives_reopen(|| open(schema.name())).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writes() {
        let fresh = fresh().await;
        super::concurrent_writes(Arc::clone(&fresh.store)).await;
        fresh.store.close().await.expect("close");
    }

    /// Two pools on one schema, as two flowd processes have.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_increments() {
        let schema = scratch().await;
        let stores = vec![open(schema.name()).await, open(schema.name()).await];
        super::concurrent_increments(stores.clone()).await;
        for store in stores {
            store.close().await.expect("close");
        }
    }

    /// Several processes starting at once on a new schema: one creates it and migrates, the
    /// others wait and find the work done.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn simultaneous_starts_migrate_once() {
        let schema = scratch().await;
        let mut starts = tokio::task::JoinSet::new();
        for _ in 0..6 {
            let name = schema.name().to_owned();
            starts.spawn(async move { PostgresStore::connect_in_schema(&url(), &name).await });
        }
        let mut stores = Vec::new();
        while let Some(started) = starts.join_next().await {
            stores.push(started.unwrap().expect("every start succeeds"));
        }
        let app = application("shared");
        stores[0].insert_application(&app).await.unwrap();
        for store in &stores {
            assert_eq!(
                store.get_application(id(&app)).await.unwrap(),
                Some(app.clone())
            );
            store.close().await.unwrap();
        }
    }

    /// The URL's `options=-c search_path=…` chooses the schema (created if missing); another
    /// schema in the same database is another store.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_url_chooses_the_schema() {
        let (first, second) = (scratch().await, scratch().await);
        let store = PostgresStore::connect(&first.url()).await.expect("connect");
        let app = application("in the first schema");
        store.insert_application(&app).await.unwrap();
        store.close().await.unwrap();
        let same = PostgresStore::connect_in_schema(&url(), first.name())
            .await
            .unwrap();
        assert_eq!(
            same.get_application(id(&app)).await.unwrap(),
            Some(app.clone())
        );
        let other = PostgresStore::connect(&second.url()).await.unwrap();
        assert_eq!(other.get_application(id(&app)).await.unwrap(), None);
        for store in [same, other] {
            store.close().await.unwrap();
        }
    }

    #[tokio::test]
    async fn bad_places_are_clear_errors() {
        let unreachable = PostgresStore::connect("postgres://postgres@127.0.0.1:1/test")
            .await
            .err()
            .expect("nothing listens on port 1");
        assert!(
            unreachable
                .to_string()
                .contains("cannot connect to PostgreSQL at 127.0.0.1:1"),
            "{unreachable}"
        );
        for (schema, problem) in [
            ("Upper", "lowercase"),
            ("a;b", "lowercase"),
            ("", "lowercase"),
        ] {
            let err = PostgresStore::connect_in_schema(&url(), schema)
                .await
                .err()
                .expect("refused");
            assert!(matches!(err, StoreError::Backend(_)));
            assert!(err.to_string().contains(problem), "{err}");
        }
        let err = PostgresStore::connect("mysql://nowhere")
            .await
            .err()
            .expect("not a PostgreSQL URL");
        assert!(err.to_string().contains("URL"), "{err}");
    }

    /// A database migrated by a newer flowd is refused rather than used.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_newer_schema_is_refused() {
        let schema = scratch().await;
        let store = PostgresStore::connect_in_schema(&url(), schema.name())
            .await
            .unwrap();
        store.close().await.unwrap();
        let (client, connection) = tokio_postgres::connect(&schema.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        let connection = tokio::spawn(connection);
        client
            .batch_execute("INSERT INTO schema_version (version) VALUES (1000)")
            .await
            .unwrap();
        drop(client);
        let _ = connection.await;
        let err = PostgresStore::connect_in_schema(&url(), schema.name())
            .await
            .err()
            .expect("refused");
        assert!(
            err.to_string().contains("newer than this flowd knows"),
            "{err}"
        );
    }
}
