//! Versioned schema migrations. `PRAGMA user_version` records how many have run; each new one
//! is appended here and never edited once released.

pub const MIGRATIONS: &[&str] = &[
    // 1: the resources of the server issue.
    r#"
    CREATE TABLE applications (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        creation_date TEXT NOT NULL,
        last_updated TEXT NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE INDEX applications_name ON applications(name);

    CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        application_id TEXT REFERENCES applications(id) ON DELETE CASCADE,
        token_hash TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        expiration_date TEXT,
        creation_date TEXT NOT NULL,
        last_updated TEXT NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE INDEX api_tokens_application ON api_tokens(application_id, name);

    CREATE TABLE flows (
        id TEXT PRIMARY KEY,
        application_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        flow_class TEXT NOT NULL,
        creation_date TEXT NOT NULL,
        last_updated TEXT NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE INDEX flows_application ON flows(application_id, flow_class, name);

    CREATE TABLE flow_versions (
        id TEXT PRIMARY KEY,
        flow_id TEXT NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
        version TEXT NOT NULL,
        creation_date TEXT NOT NULL,
        last_updated TEXT NOT NULL,
        doc TEXT NOT NULL,
        UNIQUE (flow_id, version)
    );

    CREATE TABLE storage_entries (
        flow_id TEXT NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (flow_id, key)
    ) WITHOUT ROWID;
    "#,
    // 2: run accounting (spec decisions 6, 7 and 10): per-minute stats, errors and the log ring.
    //
    // `version_key` is 'develop' or the version's id; `version_name` is kept for display and for
    // the per-version summary. `device_id` is '' when a run had no device, so it can sit in a
    // primary key. Times are ms since the epoch.
    //
    // Stats rows are keyed time-first within a flow: every query gives the flow and a time range,
    // while version and device are optional filters checked on the rows of that range.
    r#"
    CREATE TABLE flow_stats (
        flow_id TEXT NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
        minute_ms INTEGER NOT NULL,
        version_key TEXT NOT NULL,
        device_id TEXT NOT NULL,
        version_name TEXT NOT NULL,
        run_count INTEGER NOT NULL,
        paths_completed INTEGER NOT NULL,
        paths_failed INTEGER NOT NULL,
        wall_time_ms INTEGER NOT NULL,
        PRIMARY KEY (flow_id, minute_ms, version_key, device_id)
    ) WITHOUT ROWID;
    -- Retention deletes across all flows.
    CREATE INDEX flow_stats_minute ON flow_stats(minute_ms);

    CREATE TABLE run_errors (
        flow_id TEXT NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
        time_ms INTEGER NOT NULL,
        version_key TEXT NOT NULL,
        version_name TEXT NOT NULL,
        device_id TEXT NOT NULL,
        node_id TEXT,
        node_label TEXT,
        name TEXT NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX run_errors_flow_time ON run_errors(flow_id, time_ms);
    -- Retention deletes across all flows.
    CREATE INDEX run_errors_time ON run_errors(time_ms);

    CREATE TABLE run_logs (
        flow_id TEXT NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
        started_ms INTEGER NOT NULL,
        version_key TEXT NOT NULL,
        version_name TEXT NOT NULL,
        wall_time_ms INTEGER NOT NULL,
        paths_completed INTEGER NOT NULL,
        paths_failed INTEGER NOT NULL,
        errors TEXT NOT NULL
    );
    -- Newest-first reads and the ring trim; the rowid, implicitly last, breaks ties in start time.
    CREATE INDEX run_logs_flow_started ON run_logs(flow_id, started_ms);
    "#,
    // 3: node state (Latch, Throttle, On Change), per flow, apart from workflow storage.
    r#"
    CREATE TABLE node_state (
        flow_id TEXT NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (flow_id, key)
    ) WITHOUT ROWID;
    "#,
    // 4: integrations (MQTT brokers and other outside connections) of an application.
    r#"
    CREATE TABLE integrations (
        id TEXT PRIMARY KEY,
        application_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        integration_type TEXT NOT NULL,
        creation_date TEXT NOT NULL,
        last_updated TEXT NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE INDEX integrations_application ON integrations(application_id, name);
    "#,
    // 5: webhooks of an application. The token names the public URL: unique across all.
    r#"
    CREATE TABLE webhooks (
        id TEXT PRIMARY KEY,
        application_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        token TEXT NOT NULL UNIQUE,
        creation_date TEXT NOT NULL,
        last_updated TEXT NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE INDEX webhooks_application ON webhooks(application_id, name);
    "#,
    // 6: an application's flows in id order without a sort (start-up walks every flow a page
    // at a time; with 10,000 flows each page sorted the whole table).
    r#"
    CREATE INDEX flows_application_id ON flows(application_id, id);
    "#,
    // 7: the ids of runs already accounted for that a shared queue may deliver again
    // (`RunRecord::once_id`), kept for an hour.
    r#"
    CREATE TABLE accounted_runs (
        run_id TEXT PRIMARY KEY,
        recorded_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX accounted_runs_recorded ON accounted_runs(recorded_ms);
    "#,
];
