//! `flowd serve`: open the store (SQLite in the data dir, or PostgreSQL), make sure an owner
//! token exists, serve until SIGINT/SIGTERM, let in-flight requests finish, then close the store.

use crate::config::Settings;
use crate::queue::QueueLocation;
use flowd_api::bootstrap::{ensure_owner_token, OwnerToken};
use flowd_api::{AppParts, AppState};
use flowd_engine::engine::Engine;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// How long the node listening to Redis channels may go silent before another takes over.
const LISTEN_LEASE: std::time::Duration = std::time::Duration::from_secs(6);

pub fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLOWD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Writes a secret readable by the owner only (mode 0600 from creation, never wider).
fn write_secret(path: &Path, value: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(value.as_bytes())?;
    file.write_all(b"\n")
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(signal) => signal,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops flowd");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down: finishing in-flight requests");
}

pub async fn run(settings: Settings) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(&settings.data_dir).map_err(|e| {
        format!(
            "cannot create the data dir {}: {e}",
            settings.data_dir.display()
        )
    })?;
    let store = settings.store.open(&settings.data_dir).await?;
    // Request schemas compile on first use, each on its own (at most ~5 ms, the import
    // schema): compiled up front, all of them held ~5 MB that a server which never sees most
    // of those requests kept for nothing (a sixth of its idle memory).

    let token_file = settings.data_dir.join("owner-token");
    match ensure_owner_token(store.as_ref(), settings.owner_token.as_deref()).await? {
        OwnerToken::Created(value) => {
            write_secret(&token_file, &value)?;
            println!(
                "flowd: created the owner token (scope all.User); it is shown only this once:"
            );
            println!("{value}");
            println!("flowd: it is also in {}", token_file.display());
        }
        OwnerToken::Supplied => {
            write_secret(
                &token_file,
                settings.owner_token.as_deref().unwrap_or_default(),
            )?;
            tracing::info!("owner token taken from FLOWD_OWNER_TOKEN");
        }
        OwnerToken::Existing => {
            tracing::info!(file = %token_file.display(), "using the existing owner token")
        }
    }

    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    let address = listener.local_addr()?;

    let nats = match &settings.queue {
        QueueLocation::Local => None,
        QueueLocation::Nats(url) => Some(flowd_nats::NatsCluster::connect(url).await?),
    };
    let engine = match &nats {
        None => Engine::start(store.clone(), settings.engine),
        Some(nats) => {
            let queue = nats
                .run_queue(flowd_nats::queue::QueueSettings {
                    capacity: settings.engine.queue_capacity,
                    workers: settings.engine.workers,
                    ack_wait: settings.queue_ack_wait,
                })
                .await?;
            Engine::start_with_queue(store.clone(), settings.engine, Vec::new(), move |jobs| {
                Box::new(queue.start(jobs))
            })
        }
    };
    let mut listen_lease = None;
    if let Some(nats) = &nats {
        engine
            .integrations()
            .join_cluster(nats.name(), nats.node_id());
        // Redis channels have no shared subscriptions: one node at a time listens.
        engine.set_listening(false);
        let lease = nats.lease("listen-redis", LISTEN_LEASE).await?;
        let mut holding = lease.held.clone();
        let listener = engine.clone();
        tokio::spawn(async move {
            while holding.changed().await.is_ok() {
                let held = *holding.borrow_and_update();
                listener.set_listening(held);
            }
        });
        listen_lease = Some(lease);
    }
    // Triggers first, so that integrations' first connect events find them.
    engine.arm_all().await?;
    engine.connect_integrations().await?;
    flowd_engine::triggers::webhook::load(&*store, engine.webhooks()).await?;
    // Scripts and tests that ask for port 0 read the real address here; written once flowd is
    // ready to answer, so that its appearance means "ready".
    std::fs::write(settings.data_dir.join("listen-addr"), address.to_string())?;
    tracing::info!(
        %address,
        data_dir = %settings.data_dir.display(),
        store = settings.store.kind(),
        queue = settings.queue.kind(),
        "listening on {address}"
    );
    let (shutdown_sender, shutting_down) = tokio::sync::watch::channel(false);
    let mut shared = AppParts {
        store: store.clone(),
        engine: engine.clone(),
        limits: settings.limits,
        tokens: Default::default(),
        changes: None,
        shutting_down,
    };
    if let Some(nats) = &nats {
        // Other nodes' changes are applied here; this node's are announced by `state.changed`.
        // This node's own copy of the state announces nothing: it applies others' changes.
        let local = AppState::from(shared.clone());
        let feed = nats
            .change_feed(Arc::new(move |change| {
                let local = local.clone();
                Box::pin(async move { local.apply_change(&change).await })
            }))
            .await?;
        shared.changes = Some(Arc::new(feed));
        // Announcements are kept nowhere: after each reconnection (or messages NATS dropped)
        // this node reads everything again. The first round covers what changed between the
        // load above and the subscription.
        let mut gaps = nats.gaps();
        let local = AppState::from(shared.clone());
        tokio::spawn(async move {
            if let Err(e) = local.resync().await {
                tracing::error!(error = %e, "reading the store again failed");
            }
            while gaps.changed().await.is_ok() {
                gaps.borrow_and_update();
                tracing::info!("NATS reconnected: reading flows, webhooks and integrations again");
                if let Err(e) = local.resync().await {
                    tracing::error!(error = %e, "reading the store again failed");
                }
            }
        });
        let local = engine.clone();
        let relay = nats
            .reply_relay(Arc::new(move |application_id, reply_id, reply| {
                local.replies().deliver(application_id, reply_id, reply);
            }))
            .await?;
        engine.replies().set_relay(Arc::new(relay));
        let local = engine.clone();
        let relay = nats
            .debug_relay(Arc::new(move |message| local.debug().deliver(message)))
            .await?;
        engine.debug().set_relay(Arc::new(relay));
    }
    let app =
        flowd_api::app(AppState::from(shared)).layer(tower_http::trace::TraceLayer::new_for_http());
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            // Debug streams end now; other requests finish on their own.
            let _ = shutdown_sender.send(true);
        })
        .await?;

    // Requests have drained; let queued and running runs finish, then write what they left.
    // Another node listens to Redis from its next try, not after this node's lease expires.
    if let Some(lease) = listen_lease {
        lease.release().await;
    }
    engine.shutdown().await;
    store.close().await?;
    tracing::info!("store closed; bye");
    Ok(())
}
