//! The run-history actions shared by the Flow and Flow Version resources: `errors`, `logs` and
//! `stats` (spec decisions 6, 7 and 10). Query parameters and their defaults follow the route
//! table; windows are `[end - duration, end]` with `end = 0` meaning now.

use crate::error::{ApiError, ApiResult};
use crate::request::Params;
use crate::state::AppState;
use flowd_model::time::format_iso;
use flowd_store::{RunError, RunFilter, RunVersion, StoredRunError};
use serde_json::{json, Map, Value};

/// Most buckets one stats answer may hold.
pub const MAX_STATS_BUCKETS: i64 = 50_000;
/// Finest stats resolution: runs are counted per minute.
pub const MIN_RESOLUTION_MS: i64 = 60_000;
/// Most errors or log entries one answer may hold.
pub const MAX_LIMIT: u64 = 10_000;

/// The latest `end` accepted: 9999-12-31T23:59:59.999Z. Later times have no ISO 8601 form
/// with a four-digit year, which the answers' `date-time` fields need.
pub const MAX_END_MS: u64 = 253_402_300_799_999;

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(format_iso)
        .unwrap_or_default()
}

/// What the `flowVersion` query parameter (or the version in the path) selects.
pub struct VersionSelection {
    pub version: Option<RunVersion>,
}

impl VersionSelection {
    /// Resolves a version name, id or `develop` of a flow; unknown ones are a 400 naming them.
    pub async fn resolve(
        state: &AppState,
        flow_id: &str,
        selector: Option<&str>,
    ) -> ApiResult<Self> {
        let version = match selector {
            None => None,
            Some("develop") => Some(RunVersion::Develop),
            Some(name_or_id) => {
                let doc = state
                    .store
                    .get_version(flow_id, name_or_id)
                    .await?
                    .ok_or_else(|| {
                        ApiError::validation(format!(
                            "flowVersion: the workflow has no version \"{name_or_id}\""
                        ))
                    })?;
                Some(named(&doc))
            }
        };
        Ok(VersionSelection { version })
    }

    /// Adds `flowVersion`/`flowVersionId` to an answer.
    fn describe(&self, out: &mut Map<String, Value>) {
        match &self.version {
            None => {}
            Some(RunVersion::Develop) => {
                out.insert("flowVersion".into(), json!("develop"));
            }
            Some(RunVersion::Named { id, name }) => {
                out.insert("flowVersion".into(), json!(name));
                out.insert("flowVersionId".into(), json!(id));
            }
        }
    }
}

/// A version document as a [`RunVersion`].
pub fn named(doc: &Value) -> RunVersion {
    RunVersion::Named {
        id: doc
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        name: doc
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    }
}

fn window(params: &Params) -> ApiResult<(i64, i64)> {
    let duration = params.uint("duration", 86_400_000, 10 * 365 * 86_400_000)? as i64;
    let end = params.uint("end", 0, MAX_END_MS)? as i64;
    let end = if end == 0 {
        chrono::Utc::now().timestamp_millis()
    } else {
        end
    };
    if duration == 0 {
        return Err(ApiError::validation("duration must be more than 0"));
    }
    Ok((end - duration, end))
}

fn device(params: &Params) -> ApiResult<Option<String>> {
    match params.get("deviceId") {
        None => Ok(None),
        Some(id) if flowd_model::id::is_id(id) => Ok(Some(id.to_owned())),
        Some(other) => Err(ApiError::validation(format!(
            "deviceId: \"{other}\" is not an id"
        ))),
    }
}

/// An error as a `flowErrors` item, serialized straight from the stored error: an answer may
/// hold 10,000 of them, and a JSON map per item was most of its cost.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorItem<'a> {
    time: String,
    flow_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    flow_version_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    node_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    node_label: Option<&'a str>,
    error: ErrorDetail<'a>,
}

#[derive(serde::Serialize)]
struct ErrorDetail<'a> {
    name: &'a str,
    message: &'a str,
}

impl<'a> ErrorItem<'a> {
    pub fn new(version: &'a RunVersion, device_id: Option<&'a str>, error: &'a RunError) -> Self {
        let (flow_version, flow_version_id) = match version {
            RunVersion::Develop => ("develop", None),
            RunVersion::Named { id, name } => (name.as_str(), Some(id.as_str())),
        };
        ErrorItem {
            time: iso(error.time_ms),
            flow_version,
            flow_version_id,
            device_id,
            node_id: error.node_id.as_deref(),
            node_label: error.node_label.as_deref(),
            error: ErrorDetail {
                name: &error.name,
                message: &error.message,
            },
        }
    }
}

/// An `errors` answer: the query's description, then the items.
pub struct ErrorsBody {
    head: Map<String, Value>,
    found: Vec<StoredRunError>,
}

impl serde::Serialize for ErrorsBody {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.head.len() + 1))?;
        for (key, value) in &self.head {
            map.serialize_entry(key, value)?;
        }
        let items: Vec<ErrorItem<'_>> = self
            .found
            .iter()
            .map(|e| ErrorItem::new(&e.version, e.device_id.as_deref(), &e.error))
            .collect();
        map.serialize_entry("errors", &items)?;
        map.end()
    }
}

/// `GET …/errors`.
pub async fn errors(
    state: &AppState,
    flow_id: &str,
    selection: VersionSelection,
    params: &Params,
) -> ApiResult<ErrorsBody> {
    let (start, end) = window(params)?;
    let limit = params.uint("limit", 25, MAX_LIMIT)?;
    let direction = params.one_of("sortDirection", &["asc", "desc", "ASC", "DESC"], "desc")?;
    let ascending = direction.eq_ignore_ascii_case("asc");
    let device_id = device(params)?;
    state.engine.accounting().flush().await?;
    let filter = RunFilter {
        version: selection.version.clone(),
        device_id: device_id.clone(),
    };
    let found = state
        .store
        .errors(flow_id, &filter, start, end, limit, ascending)
        .await?;
    let mut head = Map::new();
    selection.describe(&mut head);
    if let Some(device_id) = device_id {
        head.insert("deviceId".into(), json!(device_id));
    }
    head.insert("start".into(), json!(iso(start)));
    head.insert("end".into(), json!(iso(end)));
    head.insert("limit".into(), json!(limit));
    head.insert("sortDirection".into(), json!(direction.to_lowercase()));
    Ok(ErrorsBody { head, found })
}

/// `GET …/logs`.
pub async fn logs(
    state: &AppState,
    flow_id: &str,
    selection: VersionSelection,
    params: &Params,
) -> ApiResult<Value> {
    let limit = params.uint("limit", 1, MAX_LIMIT)?;
    let since = match params.get("since") {
        None => None,
        Some(_) => Some(params.uint("since", 0, i64::MAX as u64 / 2)? as i64),
    };
    state.engine.accounting().flush().await?;
    let entries = state
        .store
        .logs(flow_id, selection.version.as_ref(), since, limit)
        .await?;
    let items: Vec<Value> = entries
        .iter()
        .map(|entry| {
            let version_id = match &entry.version {
                RunVersion::Develop => "develop".to_owned(),
                RunVersion::Named { id, .. } => id.clone(),
            };
            json!({
                "flowVersionId": version_id,
                "time": iso(entry.started_ms),
                "pathsFailed": entry.paths_failed,
                "pathsCompleted": entry.paths_completed,
                "runCount": 1,
                "wallTime": entry.wall_time_ms,
                "errors": entry.errors.iter().map(|e| ErrorItem::new(&entry.version, None, e)).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Value::Array(items))
}

/// `GET …/stats`.
/// A `stats` answer. Serialized as it is rather than built as a JSON value: a month of minutes
/// is 43,200 buckets, and a map per bucket was most of the answer's cost.
#[derive(serde::Serialize)]
pub struct StatsBody {
    #[serde(flatten)]
    head: Map<String, Value>,
    metrics: Vec<Metric>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Metric {
    time: String,
    paths_failed: u64,
    paths_completed: u64,
    run_count: u64,
    wall_time: u64,
}

pub async fn stats(
    state: &AppState,
    flow_id: &str,
    selection: VersionSelection,
    params: &Params,
) -> ApiResult<StatsBody> {
    let (start, end) = window(params)?;
    let resolution = params.uint("resolution", 3_600_000, 366 * 86_400_000)? as i64;
    if resolution < MIN_RESOLUTION_MS {
        return Err(ApiError::validation(format!(
            "resolution must be at least {MIN_RESOLUTION_MS} ms (runs are counted per minute)"
        )));
    }
    // Count buckets as the store makes them: from the one holding `start` to the one holding `end`.
    let first_bucket = start - start.rem_euclid(resolution);
    if (end - first_bucket) / resolution + 1 > MAX_STATS_BUCKETS {
        return Err(ApiError::validation(format!(
            "duration / resolution gives more than {MAX_STATS_BUCKETS} buckets; raise resolution"
        )));
    }
    let device_id = device(params)?;
    state.engine.accounting().flush().await?;
    let filter = RunFilter {
        version: selection.version.clone(),
        device_id: device_id.clone(),
    };
    let buckets = state
        .store
        .stats(flow_id, &filter, start, end, resolution)
        .await?;
    let mut out = Map::new();
    selection.describe(&mut out);
    if let Some(device_id) = device_id {
        out.insert("deviceId".into(), json!(device_id));
    }
    out.insert("start".into(), json!(iso(start)));
    out.insert("end".into(), json!(iso(end)));
    out.insert("resolution".into(), json!(resolution));
    let metrics = buckets
        .iter()
        .map(|b| Metric {
            time: iso(b.time_ms),
            paths_failed: b.paths_failed,
            paths_completed: b.paths_completed,
            run_count: b.run_count,
            wall_time: b.wall_time_ms,
        })
        .collect();
    Ok(StatsBody { head: out, metrics })
}

/// The `stats` field of a workflow or version document: runs and errors over the retention
/// window, by version name (decision 6).
pub async fn summary(state: &AppState, flow_id: &str, retention_ms: i64) -> ApiResult<Value> {
    state.engine.accounting().flush().await?;
    let since = chrono::Utc::now().timestamp_millis() - retention_ms;
    let summary = state.store.run_summary(flow_id, since).await?;
    let by_version: Map<String, Value> = summary
        .by_version
        .iter()
        .map(|(name, runs, errors)| {
            (
                name.clone(),
                json!({"runCount": runs, "errorCount": errors}),
            )
        })
        .collect();
    Ok(json!({
        "runCount": summary.run_count,
        "errorCount": summary.error_count,
        "byVersion": by_version,
    }))
}
