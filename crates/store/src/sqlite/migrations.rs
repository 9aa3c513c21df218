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
];
