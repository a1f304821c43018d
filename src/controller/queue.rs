//! The one work queue, keyed by resource: kube-runtime's `applier` (its scheduler and runner, as
//! under every `Controller`) over a synthetic item, [`PolicyRun`], one per [`ResourceKey`]. It
//! gives what a policy needs: requests for a key merged (a debounce lets grants created together
//! meet in one run), at most one run per key at a time, `--concurrency` keys in parallel, and the
//! run's `Action` as that key's next look (its resync).

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::ClusterResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::runtime::controller::{self, Action, Config};
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::watcher;

use super::context::Context;
use super::error::ControllerError;
use super::index::ResourceKey;

/// The work item of the run on one resource key. Not a Kubernetes object: it only lives in the
/// queue's store, where kube-runtime's runner looks its items up.
#[derive(Debug, Clone)]
pub struct PolicyRun {
    metadata: ObjectMeta,
    /// The resource whose policies the run converges.
    pub key: ResourceKey,
}

impl PolicyRun {
    /// The item of `key`.
    pub fn new(key: ResourceKey) -> Self {
        PolicyRun {
            metadata: ObjectMeta {
                name: Some(key.to_string()),
                ..ObjectMeta::default()
            },
            key,
        }
    }
}

impl Resource for PolicyRun {
    type DynamicType = ();
    type Scope = ClusterResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "PolicyRun".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "xacct.dev".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "internal".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "policyruns".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

type Sender = futures::channel::mpsc::UnboundedSender<ObjectRef<PolicyRun>>;
type Receiver = futures::channel::mpsc::UnboundedReceiver<ObjectRef<PolicyRun>>;

/// Where events put the keys they touch.
pub struct Queue {
    writer: Mutex<Writer<PolicyRun>>,
    store: Store<PolicyRun>,
    sender: Sender,
}

impl Queue {
    /// A queue and the stream of its requests (for [`drive`]).
    pub fn new() -> (Self, Receiver) {
        let (store, writer) = reflector::store();
        let (sender, receiver) = futures::channel::mpsc::unbounded();
        let queue = Queue {
            writer: Mutex::new(writer),
            store,
            sender,
        };
        (queue, receiver)
    }

    /// Asks for a run on each of `keys` (merged with any already asked for) because of `cause`,
    /// logged at debug level with each key: the one place that says why a resource runs (besides
    /// its resync and retries, which its last run's `Action` set).
    pub fn enqueue(&self, keys: BTreeSet<ResourceKey>, cause: impl std::fmt::Display) {
        if keys.is_empty() {
            return;
        }
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            tracing::debug!(resource = %key, %cause, "run requested");
            let run = PolicyRun::new(key);
            let object = ObjectRef::from_obj(&run);
            if self.store.get(&object).is_none() {
                writer.apply_watcher_event(&watcher::Event::Apply(run));
            }
            // Only fails once the queue has stopped.
            let _ = self.sender.unbounded_send(object);
        }
    }

    /// The caches are synced: runs may start (requests made before wait until then).
    pub fn start(&self) {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        writer.apply_watcher_event(&watcher::Event::Init);
        for run in self.store.state() {
            writer.apply_watcher_event(&watcher::Event::InitApply((*run).clone()));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
    }
}

/// Runs `reconcile` for each key asked for, until `requests` ends.
pub fn drive<F, Fut>(
    queue: &Queue,
    requests: Receiver,
    mut reconcile: F,
    ctx: Arc<Context>,
    concurrency: u16,
    debounce: Duration,
) -> impl Stream<Item = ()> + use<F, Fut>
where
    F: FnMut(Arc<PolicyRun>, Arc<Context>) -> Fut,
    Fut: std::future::Future<Output = Result<Action, ControllerError>> + Send + 'static,
{
    let config = Config::default()
        .concurrency(concurrency)
        .debounce(debounce);
    controller::applier(
        move |run, ctx| Box::pin(reconcile(run, ctx)),
        |run: Arc<PolicyRun>, error: &ControllerError, ctx: Arc<Context>| {
            tracing::warn!(resource = %run.key, %error, "run failed");
            Action::requeue(ctx.retry_soon(&run.key.to_string()))
        },
        ctx,
        queue.store.clone(),
        requests.map(Ok::<_, Infallible>),
        config,
    )
    .map(|result| match result {
        Ok((run, action)) => tracing::debug!(resource = %run.name, ?action, "run done"),
        Err(e) => tracing::debug!(error = %e, "run ended in error"),
    })
}
