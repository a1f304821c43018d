//! `xacct run`: the Kubernetes controller. A thin shell over the engine: watch → engine → status.
//!
//! Three controllers (CrossAccountGrant, SnapshotShare, AwsAccount) share one context; only the holder of the
//! leader Lease runs them, so two replicas never both write to AWS or to status.

pub mod account;
pub mod backoff;
pub mod conditions;
mod context;
mod error;
#[cfg(test)]
mod fixtures;
mod gc;
mod http;
pub mod index;
mod leader;
pub mod metrics;
pub mod queue;
pub mod run;
pub mod share;
pub mod verdict;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, future};
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::watch;

pub use account::ACCOUNT_FINALIZER;
pub use context::{Clock, Context, FIELD_MANAGER, ReconcileSettings};
use context::{object_key, synced};
pub use error::ControllerError;
pub use metrics::Metrics;
pub use run::GRANT_FINALIZER;

use crate::api::{AwsAccount, CrossAccountGrant, SnapshotShare};
use crate::aws::{AwsPolicies, AwsSnapshots, Connector, ConnectorOptions};
use crate::engine::{Engine, EngineSettings};

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Engine settings (instance id, trust policy quota).
    pub engine: EngineSettings,
    /// How many resources (and shares, and accounts) are reconciled at once.
    pub concurrency: u16,
    /// How long the queue waits for more changes to a resource before running it.
    pub debounce: Duration,
    /// Re-check period of every object (drift detection).
    pub resync: Duration,
    /// Watch grants and snapshot shares in this namespace only.
    pub namespace: Option<String>,
    /// Watch only grants and snapshot shares with these labels.
    pub selector: Option<String>,
    /// Where `/metrics`, `/healthz` and `/readyz` listen.
    pub metrics_addr: SocketAddr,
    /// Leader election on a Lease, when set.
    pub leader_election: Option<leader::LeaseConfig>,
    /// Namespace of Secrets named without one.
    pub secrets_namespace: String,
    /// The name events are reported under.
    pub reporter: String,
    /// Period of the garbage collection of statements whose grant is gone; `None`: off.
    pub gc_period: Option<Duration>,
    /// How AWS is called (the retry budget; the rest from the SDK's default chain).
    pub aws: ConnectorOptions,
}

pub use leader::LeaseConfig;

/// Runs until SIGTERM / Ctrl-C, or until leadership is lost (an error, so the Pod restarts clean).
pub async fn run(config: RunConfig) -> Result<(), ControllerError> {
    log_start(&config);
    let client = Client::try_default().await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(stop_on_signal(stop_tx.clone()));
    let connector = Arc::new(Connector::new(config.aws.clone()).await);
    run_with(client, connector, config, stop_tx, stop_rx).await
}

/// The start-up line: the version, the settings (none is a secret) and what is watched.
fn log_start(config: &RunConfig) {
    let lease = config.leader_election.as_ref();
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        instance_id = %config.engine.instance_id,
        namespace = config.namespace.as_deref().unwrap_or("(all)"),
        selector = config.selector.as_deref().unwrap_or("(none)"),
        concurrency = config.concurrency,
        debounce = %humantime::format_duration(config.debounce),
        resync = %humantime::format_duration(config.resync),
        trust_policy_limit = config.engine.trust_policy_limit,
        compaction = config.engine.compaction,
        max_attempts = config.aws.retry.max_attempts,
        call_timeout = %humantime::format_duration(config.aws.retry.call_timeout),
        principal_wait = %humantime::format_duration(config.engine.principal_wait),
        metrics_addr = %config.metrics_addr,
        leader_elect = lease.is_some(),
        lease = lease.map(|l| format!("{}/{}", l.namespace, l.name)).unwrap_or_default(),
        identity = lease.map(|l| l.identity.as_str()).unwrap_or_default(),
        lease_duration_seconds = lease.map(|l| l.duration_seconds).unwrap_or_default(),
        secrets_namespace = %config.secrets_namespace,
        gc_period = %config.gc_period.map(|p| humantime::format_duration(p).to_string()).unwrap_or_else(|| "off".into()),
        "starting xacct run"
    );
}

/// [`run`] with a given client and connector, stopping when `stop` says so (tests run the
/// controller in-process this way).
pub async fn run_with(
    client: Client,
    connector: Arc<Connector>,
    config: RunConfig,
    stop_tx: watch::Sender<bool>,
    stop_rx: watch::Receiver<bool>,
) -> Result<(), ControllerError> {
    check_crds(&client).await?;
    let engine = Engine::new(
        Arc::new(AwsPolicies::new(connector.clone())),
        config.engine.clone(),
    )
    .with_snapshots(Arc::new(AwsSnapshots::new(connector.clone())));
    let ready = Arc::new(AtomicBool::new(false));
    // Health and metrics answer from the start, also on a replica standing by for the lease.
    let index = Arc::new(RwLock::new(index::GrantIndex::default()));
    let metrics = Arc::new(Metrics::new(connector.calls().clone(), index.clone()));
    let http_state = http::HttpState {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    let http = tokio::spawn(http::serve(
        config.metrics_addr,
        http_state,
        stopped(stop_rx.clone()),
    ));

    let leadership = match &config.leader_election {
        Some(lease) => {
            Some(leader::acquire(client.clone(), lease, stop_rx.clone(), ready.clone()).await?)
        }
        None => None,
    };
    if *stop_rx.borrow() {
        return join_http(http).await;
    }
    let lost = Arc::new(AtomicBool::new(false));
    let watchdog = leadership
        .as_ref()
        .map(|l| l.guard(stop_tx.clone(), lost.clone()));

    let result = run_controllers(
        client, connector, engine, &config, index, metrics, stop_rx, ready,
    )
    .await;
    let _ = stop_tx.send(true);
    if let Some(watchdog) = watchdog {
        let _ = watchdog.await;
    }
    if let Some(leadership) = leadership {
        leadership.release().await;
    }
    result?;
    join_http(http).await?;
    if lost.load(Ordering::SeqCst) {
        return Err(ControllerError::Lease(
            "lost the leader lease; stopped so that another replica takes over".into(),
        ));
    }
    Ok(())
}

async fn join_http(
    http: tokio::task::JoinHandle<Result<(), ControllerError>>,
) -> Result<(), ControllerError> {
    match http.await {
        Ok(result) => result,
        Err(e) => Err(ControllerError::Http(e.to_string())),
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_controllers(
    client: Client,
    connector: Arc<Connector>,
    engine: Engine,
    config: &RunConfig,
    index: Arc<RwLock<index::GrantIndex>>,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
    ready: Arc<AtomicBool>,
) -> Result<(), ControllerError> {
    let grants_api: Api<CrossAccountGrant> = match &config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let shares_api: Api<SnapshotShare> = match &config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut grant_watch = watcher::Config::default();
    if let Some(selector) = &config.selector {
        grant_watch = grant_watch.labels(selector);
    }
    let share_watch = grant_watch.clone();
    let accounts_api: Api<AwsAccount> = Api::all(client.clone());

    // Grants and accounts feed the index, whose changes ask for runs on the keys they touch;
    // status writes and the finalizer xacct adds touch none. Shares and accounts are reconciled
    // one by one.
    let (queue, requests) = queue::Queue::new();
    let queue = Arc::new(queue);
    let grant_events = watcher(grants_api, grant_watch)
        .default_backoff()
        .modify(trim)
        .take_until(stopped(stop.clone()))
        .for_each(index_grants(index.clone(), queue.clone()));
    let (share_store, share_writer) = reflector::store();
    let share_stream = watcher(shares_api, share_watch)
        .default_backoff()
        .modify(trim)
        .reflect(share_writer)
        .applied_objects()
        .predicate_filter(lifecycle, Default::default());
    // An account's readiness changing brings back the shares on it (from the one account watch).
    let (wake_shares, share_wakes) = futures::channel::mpsc::unbounded();
    let shares_on = share_store.clone();
    let wake = move |account: &str| {
        for share in shares_on.state() {
            if share.spec.source.account == account {
                let _ = wake_shares.unbounded_send(ObjectRef::from_obj(&*share));
            }
        }
    };
    let (account_store, account_writer) = reflector::store();
    let account_stream = watcher(accounts_api.clone(), watcher::Config::default())
        .default_backoff()
        .modify(trim)
        .reflect(account_writer)
        .inspect_ok(index_accounts(index.clone(), queue.clone(), wake))
        .applied_objects()
        .predicate_filter(lifecycle, Default::default());

    let reporter = Reporter {
        controller: config.reporter.clone(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        engine,
        connector,
        reporter,
        metrics,
        settings: ReconcileSettings {
            resync: config.resync,
            secrets_namespace: config.secrets_namespace.clone(),
        },
        accounts: account_store.clone(),
        index: index.clone(),
        shares: share_store.clone(),
        external_ids: RwLock::default(),
        backoff: backoff::Backoff::new(Duration::from_secs(2), Duration::from_secs(300)),
        clock: Arc::new(Timestamp::now),
    });

    {
        let (index, accounts, ready, queue) = (
            index.clone(),
            account_store.clone(),
            ready.clone(),
            queue.clone(),
        );
        tokio::spawn(async move {
            // Runs start with every grant and account in the caches.
            while !(synced(&accounts)
                && index
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .synced())
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            queue.start();
            ready.store(true, Ordering::SeqCst);
            tracing::info!("caches synced: ready");
        });
    }

    match (config.gc_period, &config.namespace, &config.selector) {
        (Some(period), None, None) => {
            tokio::spawn(gc::collect_periodically(ctx.clone(), period, stop.clone()));
        }
        (Some(_), _, _) => tracing::warn!(
            "garbage collection is off: a controller limited by --namespace or --selector does not see every grant of its instance"
        ),
        (None, _, _) => {}
    }
    let runs = queue::drive(
        &queue,
        requests,
        run::reconcile,
        ctx.clone(),
        config.concurrency,
        config.debounce,
    )
    .take_until(stopped(stop.clone()))
    .for_each(|()| future::ready(()));
    let grant_controller = future::join(runs, grant_events);
    let share_controller = Controller::for_stream(share_stream, share_store)
        .with_config(ControllerConfig::default().concurrency(config.concurrency))
        .reconcile_on(share_wakes)
        .graceful_shutdown_on(stopped(stop.clone()))
        .run(share::reconcile, context::error_policy, ctx.clone())
        .for_each(|result| async move { log_result(result) });
    let account_controller = Controller::for_stream(account_stream, account_store)
        .graceful_shutdown_on(stopped(stop.clone()))
        .run(account::reconcile, context::error_policy, ctx)
        .for_each(|result| async move { log_result(result) });
    tracing::info!("controllers started");
    future::join3(grant_controller, share_controller, account_controller).await;
    tracing::info!("controllers stopped");
    Ok(())
}

fn log_result<K: Resource, E: std::fmt::Display>(
    result: Result<(ObjectRef<K>, kube::runtime::controller::Action), E>,
) {
    match result {
        Ok((object, action)) => tracing::debug!(%object, ?action, "reconciled"),
        Err(e) => tracing::warn!(error = %e, "reconcile error"),
    }
}

/// Keeps `index` in step with the grant watch, and asks for runs on the keys each event touches.
fn index_grants(
    index: Arc<RwLock<index::GrantIndex>>,
    queue: Arc<queue::Queue>,
) -> impl FnMut(Result<watcher::Event<CrossAccountGrant>, watcher::Error>) -> future::Ready<()> {
    move |event| {
        let mut index = index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (touched, cause) = match event {
            Ok(watcher::Event::InitApply(g)) => {
                let cause = format!("{} listed", object_key(&g));
                (index.apply_grant(g), cause)
            }
            Ok(watcher::Event::Apply(g)) => {
                let cause = format!("{} changed", object_key(&g));
                (index.apply_grant(g), cause)
            }
            Ok(watcher::Event::Delete(g)) => {
                let cause = format!("{} deleted", object_key(&g));
                (index.delete_grant(&g), cause)
            }
            Ok(watcher::Event::Init) => {
                index.begin_relist();
                Default::default()
            }
            Ok(watcher::Event::InitDone) => (
                index.end_relist(),
                "CrossAccountGrants gone while the watch restarted".into(),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "grant watch failed; retrying");
                Default::default()
            }
        };
        drop(index);
        queue.enqueue(touched, cause);
        future::ready(())
    }
}

/// Keeps `index` in step with the account watch (a grant's resource key takes its account's
/// default region): an account's region changing moves its grants to other keys. An account's
/// readiness changing also `wake`s the shares on it.
fn index_accounts(
    index: Arc<RwLock<index::GrantIndex>>,
    queue: Arc<queue::Queue>,
    wake: impl Fn(&str),
) -> impl FnMut(&watcher::Event<AwsAccount>) {
    move |event| {
        let mut index = index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (touched, cause) = match event {
            watcher::Event::Apply(a) | watcher::Event::InitApply(a) => {
                let change = index.apply_account(a);
                if change.state_changed {
                    wake(&a.name_any());
                }
                (change.keys, format!("{} changed", object_key(a)))
            }
            watcher::Event::Delete(a) => (
                index.delete_account(a),
                format!("{} deleted", object_key(a)),
            ),
            watcher::Event::Init | watcher::Event::InitDone => Default::default(),
        };
        drop(index);
        queue.enqueue(touched, cause);
    }
}

/// Drops what no reconcile reads before an object is cached: its `managedFields` (on a real API
/// server, one entry per field manager, often larger than the spec) and kubectl's copy of the
/// last applied manifest.
fn trim<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
    if let Some(annotations) = object.meta_mut().annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// The annotation `kubectl apply` (client-side) keeps the whole manifest in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Spec (generation), finalizers and deletion: the changes a reconcile must react to.
fn lifecycle<K: Resource>(obj: &K) -> Option<u64> {
    let meta = obj.meta();
    let mut hasher = DefaultHasher::new();
    meta.generation.hash(&mut hasher);
    meta.finalizers.hash(&mut hasher);
    meta.deletion_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .hash(&mut hasher);
    Some(hasher.finish())
}

/// Fails fast, with a clear message, when the CRDs are not installed.
async fn check_crds(client: &Client) -> Result<(), ControllerError> {
    let probe = ListParams::default().limit(1);
    let missing = |e: kube::Error| match e {
        kube::Error::Api(status) if status.code == 404 => {
            ControllerError::CrdsMissing(status.message)
        }
        other => other.into(),
    };
    Api::<CrossAccountGrant>::all(client.clone())
        .list_metadata(&probe)
        .await
        .map_err(missing)?;
    Api::<AwsAccount>::all(client.clone())
        .list_metadata(&probe)
        .await
        .map_err(missing)?;
    Ok(())
}

async fn stop_on_signal(stop: watch::Sender<bool>) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down: signal received");
    let _ = stop.send(true);
}

/// Resolves once `stop` says so.
pub(crate) async fn stopped(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_objects_keep_no_managed_fields_nor_last_applied_manifest() {
        let value = serde_json::json!({"apiVersion": "xacct.dev/v1alpha1", "kind": "CrossAccountGrant",
            "metadata": {"name": "reads", "namespace": "batch",
                "annotations": {LAST_APPLIED: "{\"kind\":\"CrossAccountGrant\"}", "team": "data"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"resource": {"account": "data-prod", "kind": "S3Bucket", "name": "lake"},
                     "grantee": {"accountId": "111111111111"}, "access": ["read"]}});
        let mut grant: CrossAccountGrant = serde_json::from_value(value).expect("a grant");
        let spec = grant.spec.clone();
        trim(&mut grant);
        assert_eq!(grant.metadata.managed_fields, None);
        assert_eq!(
            grant.metadata.annotations,
            Some([("team".to_string(), "data".to_string())].into())
        );
        assert_eq!(grant.spec, spec, "the spec is what reconciles read");
    }
}
