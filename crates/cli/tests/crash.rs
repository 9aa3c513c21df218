//! Crash durability (README "Durability"): flowd is killed with SIGKILL at random moments under
//! concurrent load, twenty times, and restarted on the same data dir each time; after every
//! restart everything it acknowledged, in this round and all earlier ones, is checked:
//!
//! * a REST write that was answered 200/201 — a storage entry (`setStorageEntry`), a flow PATCH
//!   (a rename carrying a sequence number), a version creation — is there, with its value; no
//!   write that was never sent appears, and an overwritten key never goes back to an older value;
//! * a run's `incr` is durable once the run has executed and its storage group commit has
//!   happened. A press is answered when its run is *queued* (a crash drops queued runs, and a press
//!   whose answer the kill cut off may still have run), so the counter is checked against bounds:
//!   at least its value before the round plus the runs known durable — seen finishing before an
//!   acknowledged storage PATCH was sent (that answer waits for every earlier storage write to
//!   commit), or seen finishing more than [`STORAGE_LAG`] before the kill — and at most that
//!   value plus the presses sent;
//! * run history (logs, stats) loses at most the last flush interval: runs seen finishing more
//!   than [`ACCOUNTING_LAG`] before the kill are in `GET …/logs` and in the stats.
//!
//! Runs are seen finishing on the flow's debug stream (the flow is button → Store Value `incr` →
//! Debug); reading it flushes nothing, so watching does not make anything durable early.
//! Every fifth round is long (killed 1.7–2.5 s in, so the history bound has something to bite on)
//! and sends no REST storage writes (so only the group commit can make the counter durable).
//! At the end a graceful stop (SIGTERM) must lose nothing: queued runs are finished first.
//!
//! The seed is printed; `FLOWD_CRASH_SEED=<seed> cargo test -p flowd --test crash -- --nocapture`
//! replays the kill moments and the writers' pauses (thread scheduling still varies).

mod common;

use common::*;
use flowd_model::schema::SchemaName;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;

/// Kill/restart rounds.
const ROUNDS: usize = 20;
/// Every `LONG_EVERY`-th round is long.
const LONG_EVERY: usize = 5;
/// When a short round's kill comes, in ms after its load starts.
const SHORT_KILL_MS: (u64, u64) = (50, 500);
/// When a long round's kill comes.
const LONG_KILL_MS: (u64, u64) = (1_700, 2_500);
/// Run history is written once a second (`FLUSH_INTERVAL`); allow the write itself on top.
const ACCOUNTING_LAG: Duration = Duration::from_millis(1_500);
/// Storage writes are committed within 5 ms (`GROUP_COMMIT_WINDOW`) plus the commit itself, which
/// queues behind other writes on the one SQLite writer; this is the slack allowed on a loaded CI
/// machine running a debug build.
const STORAGE_LAG: Duration = Duration::from_millis(500);
/// Concurrent pressers and REST storage writers.
const PRESS_TASKS: u64 = 2;
const STORAGE_TASKS: u64 = 2;
/// Presses before the final graceful stop.
const FINAL_PRESSES: u64 = 50;
/// `GET …/logs?limit=` maximum; the whole test stays below it (the log ring is raised above it).
const LOG_LIMIT: usize = 10_000;

/// SplitMix64: small, seedable, good enough to pick moments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, (lo, hi): (u64, u64)) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// A client for the load: connection errors are results (the server dies under it), not panics.
#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    fn new(server: &Server) -> Api {
        Api {
            client: reqwest::Client::new(),
            base: server.base.clone(),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), reqwest::Error> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(OWNER_TOKEN)
            .timeout(Duration::from_secs(20));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, value))
    }
}

/// What the load of one round did. "Sent" writes may or may not have been applied; "acked"
/// ones were answered with success and must survive.
#[derive(Default)]
struct Outcome {
    presses_sent: u64,
    presses_acked: u64,
    /// Distinct storage keys: (key, value, acknowledged).
    entries: Vec<(String, Value, bool)>,
    /// Overwritten keys (`latest-{task}` = a rising sequence number): key → (highest
    /// acknowledged, highest sent), 0 for none.
    latest: BTreeMap<String, (u64, u64)>,
    /// The most runs seen finishing before an acknowledged storage PATCH was sent.
    runs_flushed: u64,
    /// Flow renames (`crash-{seq}`): highest acknowledged and highest sent, 0 for none.
    renames: (u64, u64),
    /// Versions created: (name, acknowledged).
    versions: Vec<(String, bool)>,
}

impl Outcome {
    fn merge(&mut self, other: Outcome) {
        self.presses_sent += other.presses_sent;
        self.presses_acked += other.presses_acked;
        self.entries.extend(other.entries);
        self.latest.extend(other.latest);
        self.runs_flushed = self.runs_flushed.max(other.runs_flushed);
        self.renames.0 = self.renames.0.max(other.renames.0);
        self.renames.1 = self.renames.1.max(other.renames.1);
        self.versions.extend(other.versions);
    }
}

/// A request failed: fine once the kill is under way (`stop` is set before it), a failure of
/// flowd otherwise.
fn cut_off(stop: &AtomicBool, what: &str, error: reqwest::Error) -> Result<(), String> {
    if stop.load(Ordering::SeqCst) {
        Ok(())
    } else {
        Err(format!("{what} failed before the kill: {error}"))
    }
}

async fn press_load(
    api: Api,
    flow_path: String,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> Result<Outcome, String> {
    let mut rng = Rng(seed);
    let mut out = Outcome::default();
    let path = format!("{flow_path}/virtualButton");
    let body = json!({"key": "count"});
    while !stop.load(Ordering::SeqCst) {
        out.presses_sent += 1;
        match api.send(Method::POST, &path, Some(&body)).await {
            Ok((200, _)) => out.presses_acked += 1,
            Ok((status, body)) => return Err(format!("a press answered {status}: {body}")),
            Err(e) => {
                cut_off(&stop, "a press", e)?;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.range((3, 7)))).await;
    }
    Ok(out)
}

/// Alternates a new key (`r{round}-t{task}-{n}`) and an overwrite of `latest-{task}` with the
/// next sequence number, one PATCH at a time.
#[allow(clippy::too_many_arguments)]
async fn storage_load(
    api: Api,
    flow_path: String,
    stop: Arc<AtomicBool>,
    seen: Arc<AtomicU64>,
    round: usize,
    task: u64,
    mut seq: u64,
    seed: u64,
) -> Result<Outcome, String> {
    let mut rng = Rng(seed);
    let mut out = Outcome::default();
    let path = format!("{flow_path}/storage");
    let latest_key = format!("latest-{task}");
    let (mut latest_acked, mut latest_sent) = (0, 0);
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let overwrite = n % 2 == 1;
        let (key, value) = if overwrite {
            seq += 1;
            latest_sent = seq;
            (latest_key.clone(), json!(seq))
        } else {
            let key = format!("r{round:02}-t{task}-{n:04}");
            let value = json!({"round": round, "task": task, "n": n, "text": format!("entry {n} of writer {task}")});
            (key, value)
        };
        // Runs seen finishing before this request leaves: their storage writes were made before
        // it, so its answer (which waits for a commit of everything earlier) makes them durable.
        let runs_before = seen.load(Ordering::SeqCst);
        let result = api
            .send(
                Method::PATCH,
                &path,
                Some(&json!({"key": key, "value": value})),
            )
            .await;
        let acked = match result {
            Ok((200, _)) => true,
            Ok((status, body)) => {
                return Err(format!("PATCH storage {key} answered {status}: {body}"))
            }
            Err(e) => {
                cut_off(&stop, "PATCH storage", e)?;
                false
            }
        };
        if acked {
            out.runs_flushed = out.runs_flushed.max(runs_before);
        }
        if overwrite {
            if acked {
                latest_acked = seq;
            }
        } else {
            out.entries.push((key, value, acked));
        }
        if !acked {
            break;
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(rng.range((0, 3)))).await;
    }
    out.latest.insert(latest_key, (latest_acked, latest_sent));
    Ok(out)
}

/// Renames the flow `crash-{seq}`, one PATCH at a time.
async fn rename_load(
    api: Api,
    flow_path: String,
    stop: Arc<AtomicBool>,
    mut seq: u64,
    seed: u64,
) -> Result<Outcome, String> {
    let mut rng = Rng(seed);
    let mut out = Outcome::default();
    while !stop.load(Ordering::SeqCst) {
        seq += 1;
        out.renames.1 = seq;
        match api
            .send(
                Method::PATCH,
                &flow_path,
                Some(&json!({"name": format!("crash-{seq}")})),
            )
            .await
        {
            Ok((200, _)) => out.renames.0 = seq,
            Ok((status, body)) => return Err(format!("PATCH flow answered {status}: {body}")),
            Err(e) => {
                cut_off(&stop, "PATCH flow", e)?;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.range((5, 20)))).await;
    }
    Ok(out)
}

fn version_notes(name: &str) -> String {
    format!("notes of {name}")
}

/// Creates versions `r{round}-v{n}`, one at a time.
async fn version_load(
    api: Api,
    flow_path: String,
    stop: Arc<AtomicBool>,
    round: usize,
    seed: u64,
) -> Result<Outcome, String> {
    let mut rng = Rng(seed);
    let mut out = Outcome::default();
    let path = format!("{flow_path}/versions");
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let name = format!("r{round:02}-v{n:03}");
        let body = json!({"version": name, "notes": version_notes(&name)});
        let acked = match api.send(Method::POST, &path, Some(&body)).await {
            Ok((201, _)) => true,
            Ok((status, body)) => {
                return Err(format!("POST version {name} answered {status}: {body}"))
            }
            Err(e) => {
                cut_off(&stop, "POST version", e)?;
                false
            }
        };
        out.versions.push((name, acked));
        if !acked {
            break;
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(rng.range((10, 30)))).await;
    }
    Ok(out)
}

/// What the debug stream showed: when each run was seen finishing, and how many it skipped.
struct Seen {
    times: Vec<Instant>,
    lagged: u64,
}

impl Seen {
    /// Runs seen finishing before `moment`.
    fn before(&self, moment: Option<Instant>) -> u64 {
        match moment {
            None => 0,
            Some(moment) => self.times.iter().filter(|t| **t < moment).count() as u64,
        }
    }
}

/// Subscribes to the flow's debug stream (answered once subscribed) and counts the Debug node's
/// messages — one per run, sent after the run's `incr` — until the connection dies.
async fn watch_runs(api: &Api, flow_path: &str, seen: Arc<AtomicU64>) -> JoinHandle<Seen> {
    let mut response = api
        .client
        .get(format!("{}{flow_path}/debug", api.base))
        .bearer_auth(OWNER_TOKEN)
        .send()
        .await
        .expect("debug stream opened");
    assert_eq!(response.status(), 200, "debug stream");
    tokio::spawn(async move {
        let mut out = Seen {
            times: Vec::new(),
            lagged: 0,
        };
        let mut buffer: Vec<u8> = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            let now = Instant::now();
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = buffer.drain(..end + 2).collect();
                let block = String::from_utf8_lossy(&block);
                let mut kind = "message";
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(k) = line.strip_prefix("event:") {
                        kind = k.trim();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim_start());
                    }
                }
                let data: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
                match kind {
                    "debug" if data["nodeId"] == "dbg" => {
                        out.times.push(now);
                        seen.fetch_add(1, Ordering::SeqCst);
                    }
                    "lagged" => out.lagged += data["missed"].as_u64().unwrap_or(0),
                    _ => {}
                }
            }
        }
        out
    })
}

/// Everything verified so far, i.e. durable: each round's checks start from it.
#[derive(Default)]
struct Ledger {
    counter: u64,
    logged: u64,
    entries: BTreeMap<String, Value>,
    /// `latest-{task}` → (value read after the last restart, highest ever sent).
    latest: BTreeMap<String, (u64, u64)>,
    /// Flow name sequence: (read after the last restart, highest ever sent).
    rename: (u64, u64),
    versions: BTreeSet<String>,
}

/// The flow: a button whose run increments `counter` and then reports on the debug stream.
fn counter_flow() -> Value {
    json!({
        "name": "crash-0",
        "triggers": [{"type": "virtualButton", "key": "count", "outputIds": [["incr"]]}],
        "nodes": [
            {"id": "incr", "type": "StoreValueNode",
             "config": {"keyName": "counter", "valueType": "incr", "value": "1"},
             "outputIds": [["dbg"]]},
            {"id": "dbg", "type": "DebugNode", "config": {"message": "counted"}, "outputIds": [[]]}
        ]
    })
}

async fn start(data: &Path, config: &str) -> Server {
    Server::start_with(data, Some(OWNER_TOKEN), &["--config", config]).await
}

/// The flow's run log entries (the whole history: the ring is raised above `LOG_LIMIT`).
async fn log_count(server: &Server, flow_path: &str) -> usize {
    let logs = server
        .ok(
            Method::GET,
            &format!("{flow_path}/logs?limit={LOG_LIMIT}"),
            None,
            200,
            SchemaName::FlowLog,
        )
        .await;
    let entries = logs.as_array().expect("log entries");
    assert!(
        entries.len() < LOG_LIMIT,
        "the test made {LOG_LIMIT} runs or more; lower its press rate"
    );
    for entry in entries {
        assert_eq!(
            (&entry["pathsCompleted"], &entry["pathsFailed"]),
            (&json!(1), &json!(0)),
            "every run completes: {entry}"
        );
    }
    entries.len()
}

async fn version_names(server: &Server, flow_path: &str) -> BTreeMap<String, Value> {
    let mut names = BTreeMap::new();
    for page in 0.. {
        let list = server
            .ok(
                Method::GET,
                &format!("{flow_path}/versions?perPage=1000&page={page}"),
                None,
                200,
                SchemaName::FlowVersions,
            )
            .await;
        let items = list["items"].as_array().expect("items");
        for item in items {
            names.insert(
                item["version"].as_str().expect("name").to_owned(),
                item["notes"].clone(),
            );
        }
        if items.is_empty() || names.len() as u64 >= list["totalCount"].as_u64().unwrap_or(0) {
            break;
        }
    }
    names
}

/// Lag of the first run the store did not keep, among those seen: how long before the kill it
/// was seen finishing (for the report; `kept` is how many of this round's runs were kept).
fn lag_of_first_lost(seen: &Seen, kept: u64, killed_at: Instant) -> Option<Duration> {
    let mut times = seen.times.clone();
    times.sort();
    times
        .get(kept as usize)
        .map(|t| killed_at.saturating_duration_since(*t))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let began = Instant::now();
    let seed = std::env::var("FLOWD_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock")
                .as_nanos() as u64
        });
    println!("crash seed {seed} (replay: FLOWD_CRASH_SEED={seed})");
    let mut rng = Rng(seed);

    let temp = tempfile::tempdir().expect("temp dir");
    let config = temp.path().join("flowd.toml");
    std::fs::write(&config, "log-ring = 100000\n").expect("config written");
    let config = config.to_str().expect("utf-8 path").to_owned();
    let data = temp.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");

    let mut server = start(&data, &config).await;
    let app = server.create_application("crash").await;
    let flow = server.create_flow(&app, &counter_flow()).await;
    let flow_path = format!("/applications/{app}/flows/{}", flow["id"].as_str().unwrap());

    let mut ledger = Ledger::default();
    let (mut worst_storage_lag, mut worst_history_lag) = (Duration::ZERO, Duration::ZERO);
    let (mut total_sent, mut total_durable_known, mut total_history_known) = (0, 0, 0);

    for round in 0..ROUNDS {
        let ctx = format!("seed {seed}, round {round}");
        let long = round % LONG_EVERY == LONG_EVERY - 1;
        let kill_after =
            Duration::from_millis(rng.range(if long { LONG_KILL_MS } else { SHORT_KILL_MS }));

        // Load.
        let api = Api::new(&server);
        let stop = Arc::new(AtomicBool::new(false));
        let seen_count = Arc::new(AtomicU64::new(0));
        let watcher = watch_runs(&api, &flow_path, seen_count.clone()).await;
        let mut tasks: Vec<JoinHandle<Result<Outcome, String>>> = Vec::new();
        for _ in 0..PRESS_TASKS {
            tasks.push(tokio::spawn(press_load(
                api.clone(),
                flow_path.clone(),
                stop.clone(),
                rng.next(),
            )));
        }
        if !long {
            for task in 0..STORAGE_TASKS {
                let from = ledger
                    .latest
                    .get(&format!("latest-{task}"))
                    .map_or(0, |l| l.1);
                tasks.push(tokio::spawn(storage_load(
                    api.clone(),
                    flow_path.clone(),
                    stop.clone(),
                    seen_count.clone(),
                    round,
                    task,
                    from,
                    rng.next(),
                )));
            }
        }
        tasks.push(tokio::spawn(rename_load(
            api.clone(),
            flow_path.clone(),
            stop.clone(),
            ledger.rename.1,
            rng.next(),
        )));
        tasks.push(tokio::spawn(version_load(
            api.clone(),
            flow_path.clone(),
            stop.clone(),
            round,
            rng.next(),
        )));

        // The crash.
        tokio::time::sleep(kill_after).await;
        stop.store(true, Ordering::SeqCst);
        let killed_at = Instant::now();
        let status = server.kill_hard();
        assert!(
            !status.success(),
            "{ctx}: flowd was killed, yet exited with {status}"
        );

        let mut outcome = Outcome::default();
        for task in tasks {
            let result = tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .unwrap_or_else(|_| panic!("{ctx}: a load task hung after the kill"))
                .expect("load task");
            outcome.merge(result.unwrap_or_else(|e| panic!("{ctx}: {e}")));
        }
        let seen = tokio::time::timeout(Duration::from_secs(30), watcher)
            .await
            .unwrap_or_else(|_| panic!("{ctx}: the debug stream did not end with the process"))
            .expect("watcher");

        // Restart on the same data dir.
        let restarted_in = Instant::now();
        server = start(&data, &config).await;
        let restart_ms = restarted_in.elapsed().as_millis();

        // Storage entries: every acknowledged one, with its value; nothing never sent.
        let storage = server.storage(&flow_path).await;
        let storage = storage.as_object().expect("storage object");
        let mut sent: BTreeMap<&str, (&Value, bool)> = BTreeMap::new();
        for (key, value, acked) in &outcome.entries {
            sent.insert(key, (value, *acked));
        }
        for (key, value) in &ledger.entries {
            assert_eq!(
                storage.get(key),
                Some(value),
                "{ctx}: storage entry {key} kept from an earlier round"
            );
        }
        for (key, (value, acked)) in &sent {
            if *acked {
                assert_eq!(
                    storage.get(*key),
                    Some(*value),
                    "{ctx}: acknowledged storage entry {key}"
                );
            }
        }
        let mut entries = BTreeMap::new();
        for (key, value) in storage {
            if key == "counter" || key.starts_with("latest-") {
                continue;
            }
            let known = ledger
                .entries
                .get(key)
                .or(sent.get(key.as_str()).map(|s| s.0));
            assert_eq!(
                known,
                Some(value),
                "{ctx}: storage entry {key} = {value} was never written so"
            );
            entries.insert(key.clone(), value.clone());
        }
        let (acked_entries, sent_entries) = (
            outcome.entries.iter().filter(|e| e.2).count(),
            outcome.entries.len(),
        );
        ledger.entries = entries;

        // Overwritten keys: never older than the last acknowledged value, never unsent.
        for (key, (_, sent_seq)) in &outcome.latest {
            let entry = ledger.latest.entry(key.clone()).or_default();
            entry.1 = entry.1.max(*sent_seq);
        }
        for (key, (floor, ceiling)) in ledger.latest.iter_mut() {
            let acked = outcome.latest.get(key).map_or(0, |l| l.0);
            let got = storage.get(key).and_then(Value::as_u64).unwrap_or(0);
            assert!(
                got >= (*floor).max(acked) && got <= *ceiling,
                "{ctx}: {key} = {got}: acknowledged up to {}, sent up to {ceiling}",
                (*floor).max(acked)
            );
            *floor = got;
        }

        // The counter: at least the runs known durable, at most the presses sent.
        let counter = storage
            .get("counter")
            .and_then(Value::as_f64)
            .unwrap_or(0.0) as u64;
        let by_flush = outcome.runs_flushed;
        let by_time = seen.before(killed_at.checked_sub(STORAGE_LAG));
        let durable_known = by_flush.max(by_time);
        assert!(
            counter >= ledger.counter + durable_known,
            "{ctx}: counter {counter} after the crash, but it was {} before the round and {durable_known} \
             runs were durable (seen before an acknowledged storage write: {by_flush}; seen more than \
             {STORAGE_LAG:?} before the kill: {by_time})",
            ledger.counter
        );
        assert!(
            counter <= ledger.counter + outcome.presses_sent,
            "{ctx}: counter {counter}, but it was {} before the round and only {} presses were sent",
            ledger.counter,
            outcome.presses_sent
        );
        assert!(
            seen.times.len() as u64 <= outcome.presses_sent,
            "{ctx}: more runs than presses"
        );
        let counted = counter - ledger.counter;
        if let Some(lag) = lag_of_first_lost(&seen, counted, killed_at) {
            worst_storage_lag = worst_storage_lag.max(lag);
        }
        ledger.counter = counter;

        // The flow: the last acknowledged rename (or a later one sent), graph intact.
        let got = server
            .ok(Method::GET, &flow_path, None, 200, SchemaName::Flow)
            .await;
        let name = got["name"].as_str().expect("name");
        let renamed: u64 = name
            .strip_prefix("crash-")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{ctx}: flow name {name:?}"));
        ledger.rename.1 = ledger.rename.1.max(outcome.renames.1);
        assert!(
            renamed >= ledger.rename.0.max(outcome.renames.0) && renamed <= ledger.rename.1,
            "{ctx}: flow named {name}: renames acknowledged up to {}, sent up to {}",
            ledger.rename.0.max(outcome.renames.0),
            ledger.rename.1
        );
        ledger.rename.0 = renamed;
        assert_eq!(got["triggers"][0]["key"], "count", "{ctx}: {got}");
        assert_eq!(
            got["nodes"].as_array().map(Vec::len),
            Some(2),
            "{ctx}: {got}"
        );

        // Versions: every acknowledged one; none never sent.
        let versions = version_names(&server, &flow_path).await;
        for name in &ledger.versions {
            assert!(
                versions.contains_key(name),
                "{ctx}: version {name} from an earlier round is gone"
            );
        }
        let sent_versions: BTreeSet<&str> = outcome.versions.iter().map(|v| v.0.as_str()).collect();
        for (name, acked) in &outcome.versions {
            if *acked {
                assert!(
                    versions.contains_key(name),
                    "{ctx}: acknowledged version {name} is gone"
                );
            }
        }
        for (name, notes) in &versions {
            assert!(
                ledger.versions.contains(name) || sent_versions.contains(name.as_str()),
                "{ctx}: version {name} was never created"
            );
            assert_eq!(notes, &json!(version_notes(name)), "{ctx}: version {name}");
        }
        let acked_versions = outcome.versions.iter().filter(|v| v.1).count();
        ledger.versions = versions.into_keys().collect();

        // History: runs seen finishing more than a flush interval (and slack) before the kill.
        let logged = log_count(&server, &flow_path).await as u64;
        let history_known = seen.before(killed_at.checked_sub(ACCOUNTING_LAG));
        assert!(
            logged >= ledger.logged + history_known,
            "{ctx}: {logged} runs logged after the crash, {} before the round, and {history_known} runs \
             were seen finishing more than {ACCOUNTING_LAG:?} before the kill",
            ledger.logged
        );
        assert!(
            logged <= ledger.logged + outcome.presses_sent,
            "{ctx}: {logged} runs logged, {} before the round, {} presses sent",
            ledger.logged,
            outcome.presses_sent
        );
        assert_eq!(
            got["stats"]["runCount"],
            json!(logged),
            "{ctx}: stats and logs agree"
        );
        if let Some(lag) = lag_of_first_lost(&seen, logged - ledger.logged, killed_at) {
            worst_history_lag = worst_history_lag.max(lag);
        }
        let history_kept = logged - ledger.logged;
        ledger.logged = logged;

        total_sent += outcome.presses_sent;
        total_durable_known += durable_known;
        total_history_known += history_known;
        println!(
            "round {round:2} {} kill at {:4} ms, restart {restart_ms:4} ms | presses {} sent / {} acked, \
             {} seen done ({} lagged) | counter +{counted} (known durable {durable_known}: flush {by_flush}, \
             time {by_time}) | logs +{history_kept} (known {history_known}) | storage {acked_entries}/{sent_entries} \
             acked | renames {}/{} | versions {acked_versions}/{}",
            if long { "long " } else { "short" },
            kill_after.as_millis(),
            outcome.presses_sent,
            outcome.presses_acked,
            seen.times.len(),
            seen.lagged,
            outcome.renames.0,
            outcome.renames.1,
            outcome.versions.len(),
        );
    }

    // The checks had something to check.
    assert!(
        total_durable_known > 0,
        "seed {seed}: no run was ever known durable; the test is vacuous"
    );
    assert!(
        total_history_known > 0,
        "seed {seed}: no run was ever old enough for the history bound"
    );
    println!(
        "{ROUNDS} crashes: {total_sent} presses, {total_durable_known} runs known durable, \
         {total_history_known} known in history; worst lag of a lost run: storage {worst_storage_lag:?}, \
         history {worst_history_lag:?}"
    );

    // A graceful stop loses nothing: queued runs finish, storage and history are written.
    let api = Api::new(&server);
    for _ in 0..FINAL_PRESSES {
        let (status, body) = api
            .send(
                Method::POST,
                &format!("{flow_path}/virtualButton"),
                Some(&json!({"key": "count"})),
            )
            .await
            .expect("press");
        assert_eq!(status, 200, "{body}");
    }
    let (status, _) = server.stop();
    assert!(status.success(), "SIGTERM: {status}");
    let server = start(&data, &config).await;
    let storage = server.storage(&flow_path).await;
    assert_eq!(
        storage["counter"].as_f64().map(|c| c as u64),
        Some(ledger.counter + FINAL_PRESSES),
        "seed {seed}: every run queued before SIGTERM ran and was stored"
    );
    assert_eq!(
        log_count(&server, &flow_path).await as u64,
        ledger.logged + FINAL_PRESSES,
        "seed {seed}: every run queued before SIGTERM is in the history"
    );
    println!("done in {:.1} s", began.elapsed().as_secs_f64());
}
