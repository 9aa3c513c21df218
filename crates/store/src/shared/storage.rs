//! Workflow storage and node state as both stores keep them: one row per (flow, key) holding
//! compact JSON. Here are the rules (what a flow's storage counts — UTF-8 bytes of each key plus
//! bytes of its compact JSON value — and the caps a write must stay within), the statements, and
//! [`StoragePlan`], which reduces a batch of writes to what it leaves behind.

use super::documents::parse_doc;
use super::sql::{sum_int, QueryBuilder, SqlDialect, SqlQuery};
use crate::{
    StorageCaps, StorageChange, StorageMetadata, StorageSpace, StorageUpdate, StorageWrite,
    StoreError, StoreResult,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

impl StorageCaps {
    /// Refuses a write of `key` = `value_json` that would take a flow's storage past the caps,
    /// given what it holds now (`current`) and the size of the entry it replaces, if any. The
    /// engine checks its in-memory storage with this too, so both refuse alike.
    pub fn check(
        self,
        current: StorageMetadata,
        replaced_size: Option<u64>,
        key: &str,
        value_json: &str,
    ) -> StoreResult<()> {
        let new_size = flowd_model::storage::entry_size(key, value_json);
        let keys_after = current.keys_count + u64::from(replaced_size.is_none());
        let bytes_after = current
            .memory_used
            .saturating_sub(replaced_size.unwrap_or(0))
            .saturating_add(new_size);
        if keys_after > self.max_keys {
            return Err(StoreError::LimitExceeded(format!(
                "workflow storage is limited to {} keys",
                self.max_keys
            )));
        }
        if bytes_after > self.max_bytes {
            return Err(StoreError::LimitExceeded(format!(
                "workflow storage is limited to {} bytes (keys plus JSON values); this write \
                 would make it {bytes_after}",
                self.max_bytes
            )));
        }
        Ok(())
    }
}

/// Metadata from a byte total and a key count as the database returns them.
pub(crate) fn metadata_from(bytes: i64, keys: i64) -> StorageMetadata {
    StorageMetadata {
        memory_used: bytes.max(0) as u64,
        keys_count: keys.max(0) as u64,
    }
}

impl StorageSpace {
    /// The table that holds the space's entries.
    pub(crate) fn table(self) -> &'static str {
        match self {
            StorageSpace::Storage => "storage_entries",
            StorageSpace::NodeState => "node_state",
        }
    }
}

/// Bytes and keys of a flow's storage; read with [`metadata_from`].
pub(crate) fn metadata_sql<D: SqlDialect>(flow_id: &str) -> SqlQuery {
    let mut query = QueryBuilder::<D>::new();
    let sql = format!(
        "SELECT COALESCE({}, 0), COUNT(*) FROM storage_entries WHERE flow_id = {}",
        sum_int(&entry_size::<D>()),
        query.text(flow_id)
    );
    query.finish(sql)
}

/// The bytes one entry counts for, as SQL.
fn entry_size<D: SqlDialect>() -> String {
    format!("{} + {}", D::byte_length("key"), D::byte_length("value"))
}

/// The size of one entry, if it exists.
pub(crate) fn entry_size_sql<D: SqlDialect>(flow_id: &str, key: &str) -> SqlQuery {
    let mut query = QueryBuilder::<D>::new();
    let sql = format!(
        "SELECT CAST({} AS BIGINT) FROM storage_entries WHERE flow_id = {} AND key = {}",
        entry_size::<D>(),
        query.text(flow_id),
        query.text(key)
    );
    query.finish(sql)
}

/// Every entry of a flow's table, by key (byte order).
pub(crate) fn entries_sql<D: SqlDialect>(space: StorageSpace, flow_id: &str) -> SqlQuery {
    let mut query = QueryBuilder::<D>::new();
    let sql = format!(
        "SELECT key, value FROM {} WHERE flow_id = {} ORDER BY key",
        space.table(),
        query.text(flow_id)
    );
    query.finish(sql)
}

/// One entry's value; with `lock`, its row is locked until the transaction ends.
pub(crate) fn value_sql<D: SqlDialect>(
    space: StorageSpace,
    flow_id: &str,
    key: &str,
    lock: bool,
) -> SqlQuery {
    let mut query = QueryBuilder::<D>::new();
    let sql = format!(
        "SELECT value FROM {} WHERE flow_id = {} AND key = {}{}",
        space.table(),
        query.text(flow_id),
        query.text(key),
        if lock { D::LOCK_ROWS } else { "" }
    );
    query.finish(sql)
}

/// Inserts or replaces one entry.
pub(crate) fn upsert_sql<D: SqlDialect>(
    space: StorageSpace,
    flow_id: &str,
    key: &str,
    value_json: &str,
) -> SqlQuery {
    let mut query = QueryBuilder::<D>::new();
    let sql = format!(
        "INSERT INTO {} (flow_id, key, value) VALUES ({}, {}, {}) \
         ON CONFLICT (flow_id, key) DO UPDATE SET value = excluded.value",
        space.table(),
        query.text(flow_id),
        query.text(key),
        query.text(value_json)
    );
    query.finish(sql)
}

/// Deletes one entry (`Some(key)`) or all of a flow's (`None`).
pub(crate) fn delete_sql<D: SqlDialect>(
    space: StorageSpace,
    flow_id: &str,
    key: Option<&str>,
) -> SqlQuery {
    let mut query = QueryBuilder::<D>::new();
    let mut sql = format!(
        "DELETE FROM {} WHERE flow_id = {}",
        space.table(),
        query.text(flow_id)
    );
    if let Some(key) = key {
        sql.push_str(&format!(" AND key = {}", query.text(key)));
    }
    query.finish(sql)
}

/// A read-modify-write ([`crate::StorageStore::storage_modify`]) between its read and its
/// write: what the update decided, and what writing it takes. Each backend reads the entry
/// (locked) and whether the flow exists, makes this, checks the caps when it
/// [counts against them](Self::counts_against_caps), runs [`write`](Self::write) and answers
/// [`after`](Self::after).
pub(crate) struct Modification {
    /// The statement that makes the change; `None` when nothing changes.
    pub write: Option<SqlQuery>,
    /// For a `Set` in workflow storage: the size of the entry it replaces (`None` for a new
    /// key) and the new value's compact JSON, which the caps are checked with.
    caps_check: Option<(Option<u64>, String)>,
    /// The entry's value afterwards.
    pub after: Option<Value>,
}

impl Modification {
    /// Runs `update` on the entry whose stored JSON is `current_json`. A flow that does not
    /// `exist` keeps nothing: the update runs all the same, and nothing is written.
    pub fn decide<D: SqlDialect>(
        space: StorageSpace,
        flow_id: &str,
        key: &str,
        exists: bool,
        current_json: Option<String>,
        update: StorageUpdate,
    ) -> StoreResult<Modification> {
        let current = current_json.as_deref().map(parse_doc).transpose()?;
        let change = update(current.clone());
        if !exists {
            return Ok(Modification {
                write: None,
                caps_check: None,
                after: None,
            });
        }
        Ok(match change {
            StorageChange::Keep => Modification {
                write: None,
                caps_check: None,
                after: current,
            },
            StorageChange::Delete => Modification {
                write: current_json
                    .is_some()
                    .then(|| delete_sql::<D>(space, flow_id, Some(key))),
                caps_check: None,
                after: None,
            },
            StorageChange::Set(value) => {
                let value_json = value.to_string();
                let replaced =
                    current_json.map(|json| flowd_model::storage::entry_size(key, &json));
                Modification {
                    write: Some(upsert_sql::<D>(space, flow_id, key, &value_json)),
                    caps_check: (space == StorageSpace::Storage).then_some((replaced, value_json)),
                    after: Some(value),
                }
            }
        })
    }

    /// Whether the write must be checked against the caps (with the flow's metadata).
    pub fn counts_against_caps(&self) -> bool {
        self.caps_check.is_some()
    }

    /// Refuses the write if it would take a flow holding `current` past `caps`.
    pub fn check_caps(
        &self,
        key: &str,
        current: StorageMetadata,
        caps: StorageCaps,
    ) -> StoreResult<()> {
        match &self.caps_check {
            Some((replaced, value_json)) => caps.check(current, *replaced, key, value_json),
            None => Ok(()),
        }
    }
}

/// What a batch of [`StorageWrite`]s leaves behind, as sets of writes that no longer depend on
/// their order: clear these flows' storage first, then delete these keys, then upsert these
/// entries and node states. For a backend that writes a batch a table at a time rather than a
/// write at a time.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct StoragePlan {
    /// Flows whose storage a `Clear` emptied.
    pub clear: Vec<String>,
    /// (flow, key) of storage entries whose last write was a `Delete`.
    pub delete: Vec<(String, String)>,
    /// (flow, key, value) of storage entries whose last write was a `Set`.
    pub set: Vec<(String, String, String)>,
    /// (flow, key, value): the last `SetNodeState` of each node state key.
    pub node_states: Vec<(String, String, String)>,
}

impl StoragePlan {
    /// The plan of `batch`, keeping only the writes to flows that `exist`. Every list is in
    /// (flow, key) order, so that concurrent batches lock rows in one order.
    pub fn new(batch: &[StorageWrite], exists: impl Fn(&str) -> bool) -> StoragePlan {
        let mut cleared: BTreeSet<&str> = BTreeSet::new();
        // The last write of each (flow, key): Some(value) to set, None to delete.
        let mut entries: BTreeMap<(&str, &str), Option<&str>> = BTreeMap::new();
        let mut node_states: BTreeMap<(&str, &str), &str> = BTreeMap::new();
        for write in batch {
            match write {
                StorageWrite::Set {
                    flow_id,
                    key,
                    value_json,
                } => {
                    entries.insert((flow_id, key), Some(value_json));
                }
                StorageWrite::Delete { flow_id, key } => {
                    entries.insert((flow_id, key), None);
                }
                StorageWrite::Clear { flow_id } => {
                    // Earlier writes to the flow are gone with the clear.
                    entries.retain(|(flow, _), _| flow != flow_id);
                    cleared.insert(flow_id);
                }
                StorageWrite::SetNodeState {
                    flow_id,
                    key,
                    value_json,
                } => {
                    node_states.insert((flow_id, key), value_json);
                }
            }
        }
        let mut plan = StoragePlan {
            clear: cleared
                .into_iter()
                .filter(|flow| exists(flow))
                .map(str::to_owned)
                .collect(),
            ..StoragePlan::default()
        };
        for ((flow, key), value) in entries {
            if !exists(flow) {
                continue;
            }
            match value {
                Some(value) => plan.set.push((flow.into(), key.into(), value.into())),
                // A delete after a clear of the same flow has nothing left to delete.
                None if plan.clear.iter().any(|f| f == flow) => {}
                None => plan.delete.push((flow.into(), key.into())),
            }
        }
        plan.node_states = node_states
            .into_iter()
            .filter(|((flow, _), _)| exists(flow))
            .map(|((flow, key), value)| (flow.into(), key.into(), value.into()))
            .collect();
        plan
    }
}

/// The distinct flows a batch writes to, in id order.
pub(crate) fn flows_written(batch: &[StorageWrite]) -> Vec<&str> {
    let flows: BTreeSet<&str> = batch
        .iter()
        .map(|write| match write {
            StorageWrite::Set { flow_id, .. }
            | StorageWrite::Delete { flow_id, .. }
            | StorageWrite::Clear { flow_id }
            | StorageWrite::SetNodeState { flow_id, .. } => flow_id.as_str(),
        })
        .collect();
    flows.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(flow: &str, key: &str, value: &str) -> StorageWrite {
        StorageWrite::Set {
            flow_id: flow.into(),
            key: key.into(),
            value_json: value.into(),
        }
    }

    fn triple(flow: &str, key: &str, value: &str) -> (String, String, String) {
        (flow.into(), key.into(), value.into())
    }

    #[test]
    fn a_plan_keeps_the_last_write_of_each_key() {
        let batch = [
            set("f", "a", "1"),
            set("g", "x", "1"),
            StorageWrite::Delete {
                flow_id: "g".into(),
                key: "y".into(),
            },
            set("f", "b", "2"),
            StorageWrite::Clear {
                flow_id: "f".into(),
            },
            set("f", "c", "3"),
            StorageWrite::Delete {
                flow_id: "f".into(),
                key: "c".into(),
            },
            set("f", "d", "4"),
            set("g", "x", "2"),
            StorageWrite::SetNodeState {
                flow_id: "f".into(),
                key: "n".into(),
                value_json: "1".into(),
            },
            StorageWrite::SetNodeState {
                flow_id: "f".into(),
                key: "n".into(),
                value_json: "2".into(),
            },
            set("gone", "k", "1"),
        ];
        let plan = StoragePlan::new(&batch, |flow| flow != "gone");
        assert_eq!(
            plan,
            StoragePlan {
                clear: vec!["f".into()],
                delete: vec![("g".into(), "y".into())],
                set: vec![triple("f", "d", "4"), triple("g", "x", "2")],
                node_states: vec![triple("f", "n", "2")],
            }
        );
        assert_eq!(flows_written(&batch), ["f", "g", "gone"]);
    }
}
