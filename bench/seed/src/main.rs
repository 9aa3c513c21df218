//! Seeds a flowd data dir for the benchmarks, through the store traits (`flowd_store::Store`,
//! SQLite implementation) rather than SQL, so the rows are exactly what flowd itself would write.
//! Run it while flowd is stopped: the server keeps flows' storage in memory in front of the store
//! and would not see keys written behind its back (history and flows it reads from the store).
//!
//! ```text
//! flowd-bench-seed history --data-dir D --app A --flow F [--days 30] [--errors 10000]
//!     one run per minute for DAYS days up to now (DAYS*1440 stats buckets), ERRORS of them
//!     carrying one error each, spread evenly; recorded in batches, as the engine does
//! flowd-bench-seed flows --data-dir D --app A --template F --count N [--out FILE]
//!     N copies of flow F (new ids, names scale-00000…), imported 1,000 per transaction;
//!     the new ids go to FILE, one per line
//! flowd-bench-seed storage --data-dir D --flow F --keys N
//!     N workflow storage keys k00000… in one transaction
//! ```
//!
//! Each command prints one JSON line saying what it wrote and how long it took.

use flowd_store::sqlite::SqliteStore;
use flowd_store::{
    AccountingStore, FlowStore, RunError, RunFilter, RunRecord, RunVersion, StorageStore,
    StorageWrite, Store,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const MINUTE_MS: i64 = 60_000;
/// Runs recorded per `record_runs` call (the engine writes about a second's worth at a time).
const HISTORY_BATCH: usize = 5_000;
/// The engine's default `log-ring`.
const LOG_RING: usize = 1_000;
const FLOWS_PER_TRANSACTION: usize = 1_000;

struct Args {
    command: String,
    options: HashMap<String, String>,
}

impl Args {
    fn parse() -> Result<Args> {
        let mut raw = std::env::args().skip(1);
        let command = raw
            .next()
            .ok_or("usage: flowd-bench-seed history|flows|storage …")?;
        let mut options = HashMap::new();
        while let Some(name) = raw.next() {
            let key = name
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {name}"))?;
            let value = raw.next().ok_or_else(|| format!("{name} needs a value"))?;
            options.insert(key.to_owned(), value);
        }
        Ok(Args { command, options })
    }

    fn text(&self, name: &str) -> Result<String> {
        self.options
            .get(name)
            .cloned()
            .ok_or_else(|| format!("--{name} is required").into())
    }

    fn number(&self, name: &str, default: u64) -> Result<u64> {
        match self.options.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name}: {v} is not a number").into()),
        }
    }

    fn data_dir(&self) -> Result<PathBuf> {
        Ok(PathBuf::from(self.text("data-dir")?))
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One run per minute for `days` days ending with the current minute; `errors` of them fail
/// with one error each (more than one per run when there are more errors than minutes).
async fn history(store: &SqliteStore, args: &Args) -> Result<Value> {
    let application_id = args.text("app")?;
    let flow_id = args.text("flow")?;
    if store.get_flow(&application_id, &flow_id).await?.is_none() {
        return Err(format!("no flow {flow_id} in application {application_id}").into());
    }
    let minutes = args.number("days", 30)? as usize * 1440;
    let error_count = args.number("errors", 10_000)? as usize;
    if minutes == 0 {
        return Err("--days must be at least 1".into());
    }
    let now = now_ms();
    let last_minute = now - now.rem_euclid(MINUTE_MS);
    let first_minute = last_minute - (minutes as i64 - 1) * MINUTE_MS;

    let mut errors_of_run: Vec<Vec<RunError>> = vec![Vec::new(); minutes];
    for k in 0..error_count {
        let run = k * minutes / error_count.max(1);
        let started = first_minute + run as i64 * MINUTE_MS + 7_000;
        errors_of_run[run].push(RunError {
            time_ms: (started + 1 + k as i64 % 50).min(now),
            node_id: Some("fail".into()),
            node_label: Some("Throw".into()),
            name: "ThrowError".into(),
            message: format!("synthetic error {k} for the history benchmark"),
        });
    }

    let began = Instant::now();
    let mut batch = Vec::with_capacity(HISTORY_BATCH);
    for (i, errors) in errors_of_run.into_iter().enumerate() {
        let failed = !errors.is_empty();
        batch.push(RunRecord {
            once_id: None,
            application_id: application_id.clone(),
            flow_id: flow_id.clone(),
            version: RunVersion::Develop,
            device_id: None,
            // Within the minute, and never in the future (the last minute is the current one).
            started_ms: (first_minute + i as i64 * MINUTE_MS + 7_000).min(now),
            wall_time_ms: 2 + (i % 7) as u64,
            paths_completed: u64::from(!failed),
            paths_failed: u64::from(failed),
            errors,
        });
        if batch.len() == HISTORY_BATCH {
            store.record_runs(&batch, LOG_RING).await?;
            batch.clear();
        }
    }
    store.record_runs(&batch, LOG_RING).await?;
    let seeded_secs = began.elapsed().as_secs_f64();

    // Read it back through the same trait the API uses.
    let all = RunFilter::default();
    let buckets = store
        .stats(&flow_id, &all, first_minute, now + 1, MINUTE_MS)
        .await?;
    let runs: u64 = buckets.iter().map(|b| b.run_count).sum();
    let stored_errors = store
        .errors(&flow_id, &all, first_minute, now + 1, u64::MAX / 2, false)
        .await?
        .len();
    if runs != minutes as u64 || stored_errors != error_count {
        return Err(format!(
            "read back {runs} runs and {stored_errors} errors, seeded {minutes} and {error_count}"
        )
        .into());
    }
    Ok(json!({
        "seeded": "history", "flowId": flow_id, "minutes": minutes, "runs": runs,
        "errors": stored_errors, "firstMinuteMs": first_minute, "lastMinuteMs": last_minute,
        "secs": seeded_secs,
    }))
}

/// Copies of a template flow with fresh ids.
async fn flows(store: &SqliteStore, args: &Args) -> Result<Value> {
    let application_id = args.text("app")?;
    let template_id = args.text("template")?;
    let count = args.number("count", 10_000)? as usize;
    let template = store
        .get_flow(&application_id, &template_id)
        .await?
        .ok_or_else(|| format!("no flow {template_id} in application {application_id}"))?;
    // The flow's id may appear inside its document (generated trigger keys start with it), so
    // every occurrence is replaced, not only the `id` field.
    let text = template.to_string();

    let began = Instant::now();
    let mut ids = Vec::with_capacity(count);
    let mut chunk = Vec::with_capacity(FLOWS_PER_TRANSACTION);
    for i in 0..count {
        let id = flowd_model::id::new_id();
        let mut doc: Value = serde_json::from_str(&text.replace(&template_id, &id))?;
        doc["name"] = json!(format!("scale-{i:05}"));
        chunk.push(doc);
        ids.push(id);
        if chunk.len() == FLOWS_PER_TRANSACTION {
            store.import_flows(&chunk, &[]).await?;
            chunk.clear();
        }
    }
    store.import_flows(&chunk, &[]).await?;
    let secs = began.elapsed().as_secs_f64();
    if let Some(out) = args.options.get("out") {
        let mut lines = ids.join("\n");
        lines.push('\n');
        std::fs::write(out, lines)?;
    }
    Ok(json!({"seeded": "flows", "count": count, "template": template_id, "secs": secs}))
}

/// Workflow storage keys, in one batch.
async fn storage(store: &SqliteStore, args: &Args) -> Result<Value> {
    let flow_id = args.text("flow")?;
    let keys = args.number("keys", 10_000)? as usize;
    let began = Instant::now();
    let batch: Vec<StorageWrite> = (0..keys)
        .map(|i| StorageWrite::Set {
            flow_id: flow_id.clone(),
            key: format!("k{i:05}"),
            value_json: json!({"i": i, "label": format!("value {i}"), "ok": i % 2 == 0})
                .to_string(),
        })
        .collect();
    store.storage_apply(&batch).await?;
    let stored = store.storage_entries(&flow_id).await?.len();
    if stored < keys {
        return Err(format!("read back {stored} keys, seeded {keys}").into());
    }
    Ok(json!({
        "seeded": "storage", "flowId": flow_id, "keys": stored,
        "secs": began.elapsed().as_secs_f64(),
    }))
}

#[tokio::main]
async fn main() {
    let outcome = async {
        let args = Args::parse()?;
        if !["history", "flows", "storage"].contains(&args.command.as_str()) {
            return Err(format!(
                "unknown command {}: history, flows or storage",
                args.command
            )
            .into());
        }
        let store = SqliteStore::open(&args.data_dir()?).await?;
        let summary = match args.command.as_str() {
            "history" => history(&store, &args).await,
            "flows" => flows(&store, &args).await,
            "storage" => storage(&store, &args).await,
            _ => unreachable!("checked above"),
        }?;
        // Checkpoints the WAL into the database file, as flowd does at shutdown.
        store.close().await?;
        Ok::<Value, Box<dyn std::error::Error>>(summary)
    }
    .await;
    match outcome {
        Ok(summary) => println!("{summary}"),
        Err(e) => {
            eprintln!("flowd-bench-seed: {e}");
            std::process::exit(1);
        }
    }
}
