//! The controller run in-process (`controller::run_with`) against the kube emulator and the AWS
//! emulator, with what tests ask of it: the objects' APIs, their Ready conditions, events, the
//! bucket policies as Sids, the AWS writes it made.
//!
//! ```ignore
//! let h = Harness::start(&["lake"]).await; // buckets each with a foreign statement
//! let h = Harness::builder().bucket("lake").namespace("batch").gc_period(d).start().await;
//! ```

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::watch;
use xacct::api::{AwsAccount, CrossAccountGrant};
use xacct::aws::{Connector, ConnectorOptions};
use xacct::controller::{ControllerError, RunConfig, run_with};

use super::kube_api::{KubeEmulator, eventually, run_config};
use super::{DATA_ACCOUNT, Moto, clients, sids};

/// The statement the harness's buckets hold before xacct writes anything (Sid `Foreign`).
pub fn foreign(bucket: &str) -> Value {
    json!({"Sid": "Foreign", "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteBucket", "Resource": format!("arn:aws:s3:::{bucket}")})
}

/// Creates `obj`, panicking if the API refuses it.
pub async fn create<K>(api: &Api<K>, obj: &K)
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.create(&PostParams::default(), obj)
        .await
        .expect("create");
}

/// Merges `spec` into the spec of `name`.
pub async fn merge_spec<K>(api: &Api<K>, name: &str, spec: Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": spec})),
    )
    .await
    .expect("patch spec");
}

/// Whether a get answered 404.
pub fn gone<K>(result: Result<K, kube::Error>) -> bool {
    matches!(result, Err(kube::Error::Api(e)) if e.code == 404)
}

/// How to set up a [`Harness`].
pub struct Builder {
    /// Buckets of the data account to create, and whether with the [`foreign`] statement.
    buckets: Vec<(String, bool)>,
    config: RunConfig,
    through: Option<(ConnectorOptions, Arc<Connector>)>,
}

impl Builder {
    /// A bucket of the data account whose policy holds the [`foreign`] statement.
    pub fn bucket(mut self, name: &str) -> Builder {
        self.buckets.push((name.into(), true));
        self
    }

    /// Buckets, each as [`Builder::bucket`].
    pub fn buckets(self, names: &[&str]) -> Builder {
        names.iter().fold(self, |b, name| b.bucket(name))
    }

    /// A bucket of the data account with no policy.
    pub fn bare_bucket(mut self, name: &str) -> Builder {
        self.buckets.push((name.into(), false));
        self
    }

    /// The controller watches this namespace only.
    pub fn namespace(mut self, namespace: &str) -> Builder {
        self.config.namespace = Some(namespace.into());
        self
    }

    /// The controller watches the objects with this label selector only.
    pub fn selector(mut self, selector: &str) -> Builder {
        self.config.selector = Some(selector.into());
        self
    }

    /// The resync period (2 s by default).
    pub fn resync(mut self, resync: Duration) -> Builder {
        self.config.resync = resync;
        self
    }

    /// A periodic garbage collection every `period`.
    pub fn gc_period(mut self, period: Duration) -> Builder {
        self.config.gc_period = Some(period);
        self
    }

    /// Any other change to the controller's configuration.
    pub fn config(mut self, change: impl FnOnce(&mut RunConfig)) -> Builder {
        change(&mut self.config);
        self
    }

    /// The controller calls AWS with `tool` (e.g. through a fault proxy) instead of a connector
    /// of its own on a moto of its own; the harness sets up and inspects straight at `direct`
    /// (e.g. `moto.options()`, never faulted). The caller keeps that moto running.
    pub fn through(mut self, direct: ConnectorOptions, tool: Arc<Connector>) -> Builder {
        self.through = Some((direct, tool));
        self
    }

    /// The emulators, with the buckets, but no controller yet: create what it must find at its
    /// start, then [`Harness::run`].
    pub async fn prepare(self) -> Harness {
        let (moto, connector, s3) = match self.through {
            None => {
                let moto = Moto::start();
                let connector = moto.connector().await;
                let s3 = clients(&connector, DATA_ACCOUNT).await.s3;
                (Some(moto), connector, s3)
            }
            Some((direct, tool)) => {
                let direct = Connector::new(direct).await;
                (None, tool, clients(&direct, DATA_ACCOUNT).await.s3)
            }
        };
        let kube = KubeEmulator::start();
        for (bucket, with_foreign) in &self.buckets {
            s3.create_bucket().bucket(bucket).send().await.unwrap();
            if *with_foreign {
                let foreign = json!({"Version": "2012-10-17", "Statement": [foreign(bucket)]});
                s3.put_bucket_policy()
                    .bucket(bucket)
                    .policy(foreign.to_string())
                    .send()
                    .await
                    .unwrap();
            }
        }
        let (stop, _) = watch::channel(false);
        Harness {
            client: kube.client(),
            metrics_url: format!("http://{}/metrics", self.config.metrics_addr),
            _moto: moto,
            _kube: kube,
            connector,
            s3,
            config: Some(self.config),
            stop,
            task: None,
        }
    }

    /// The emulators, with the buckets, and the controller running.
    pub async fn start(self) -> Harness {
        let mut h = self.prepare().await;
        h.run();
        h
    }
}

/// The emulators and the controller running in-process on them.
pub struct Harness {
    _moto: Option<Moto>,
    _kube: KubeEmulator,
    /// A client of the kube emulator.
    pub client: Client,
    /// The controller's connector: its call log counts what the controller did (and what a test
    /// does with it).
    pub connector: Arc<Connector>,
    /// S3 in the data account.
    pub s3: aws_sdk_s3::Client,
    /// The controller's `/metrics`.
    pub metrics_url: String,
    config: Option<RunConfig>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<Result<(), ControllerError>>>,
}

impl Harness {
    /// Set up as the builder says: by default no bucket, every namespace, a resync of 2 s.
    pub fn builder() -> Builder {
        Builder {
            buckets: Vec::new(),
            config: run_config(Duration::from_secs(2)),
            through: None,
        }
    }

    /// The controller running, with these buckets (each holding the [`foreign`] statement).
    pub async fn start(buckets: &[&str]) -> Harness {
        Harness::builder().buckets(buckets).start().await
    }

    /// Creates the DB instance `orders` and its manual snapshot `orders-1` in the data account;
    /// returns the RDS client there.
    pub async fn orders_snapshot(&self) -> aws_sdk_rds::Client {
        let config = self
            .connector
            .session(&super::access("setup", DATA_ACCOUNT))
            .await
            .expect("a session in the data account");
        let rds = self.connector.rds_client(&config, "us-east-1");
        super::db_instance(&rds, "orders", None, Some("orders-1")).await;
        rds
    }

    /// Starts the controller (of a harness from [`Builder::prepare`]); the call log counts only
    /// what happens from now on.
    pub fn run(&mut self) {
        let config = self.config.take().expect("the controller runs once");
        let (stop, stop_rx) = watch::channel(false);
        self.connector.calls().reset();
        self.task = Some(tokio::spawn(run_with(
            self.client.clone(),
            self.connector.clone(),
            config,
            stop.clone(),
            stop_rx,
        )));
        self.stop = stop;
    }

    /// Stops the controller (the emulators keep running) and checks it ended without error.
    pub async fn stop(&mut self) {
        let task = self.task.take().expect("the controller is running");
        let _ = self.stop.send(true);
        let result = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("controller stops")
            .expect("task");
        assert!(result.is_ok(), "{result:?}");
    }

    /// Stops the controller, then the emulators.
    pub async fn finish(mut self) {
        self.stop().await;
    }

    pub fn grants(&self, namespace: &str) -> Api<CrossAccountGrant> {
        Api::namespaced(self.client.clone(), namespace)
    }

    pub fn accounts(&self) -> Api<AwsAccount> {
        Api::all(self.client.clone())
    }

    /// The Sids of `bucket`'s policy; none without one.
    pub async fn policy(&self, bucket: &str) -> Vec<Option<String>> {
        match self.s3.get_bucket_policy().bucket(bucket).send().await {
            Ok(out) => sids(out.policy().unwrap()),
            Err(_) => Vec::new(),
        }
    }

    /// The grant's Ready condition: (status, reason, message).
    pub async fn ready(&self, namespace: &str, name: &str) -> Option<(String, String, String)> {
        let g = self.grants(namespace).get(name).await.ok()?;
        let c = g
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        Some((c.status, c.reason, c.message))
    }

    /// Waits until the AwsAccount data-prod has been verified.
    pub async fn wait_account_verified(&self) {
        eventually(20, "the account to be Verified", || async {
            let a = self.accounts().get("data-prod").await.ok()?;
            a.status?
                .conditions
                .into_iter()
                .find(|c| c.reason == "Verified")
        })
        .await;
    }

    /// Waits (20 s at most) until the grant is Ready=`status` for `reason` (or `Converged` when
    /// `Applied` is wanted: the next resync turns one into the other); returns its message.
    pub async fn wait_ready(
        &self,
        namespace: &str,
        name: &str,
        status: &str,
        reason: &str,
    ) -> String {
        let last = std::sync::Mutex::new(None);
        let found = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let seen = self.ready(namespace, name).await;
                if let Some((s, r, m)) = &seen {
                    // "Applied" turns into "Converged" at the next resync (2 s here); a loaded
                    // machine may poll only after that.
                    let later = reason == "Applied" && r == "Converged";
                    if s == status && (r == reason || later) {
                        return m.clone();
                    }
                }
                *last.lock().unwrap() = seen;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        found.unwrap_or_else(|_| {
            panic!(
                "{namespace}/{name}: wanted Ready={status} {reason}, last saw {:?}",
                last.lock().unwrap()
            )
        })
    }

    /// The events of `namespace`: (type, reason, note).
    pub async fn events(&self, namespace: &str) -> Vec<(String, String, String)> {
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        let list = api
            .list(&Default::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        list.into_iter()
            .map(|e| {
                (
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default(),
                )
            })
            .collect()
    }

    /// The notes of the events of `reason` in `namespace`.
    pub async fn notes(&self, namespace: &str, reason: &str) -> Vec<String> {
        self.events(namespace)
            .await
            .into_iter()
            .filter(|(_, r, _)| r == reason)
            .map(|(_, _, n)| n)
            .collect()
    }

    /// The AWS writes (`Put*`, `Delete*` calls) in the call log.
    pub fn writes(&self) -> u64 {
        self.connector.calls().count_matching(&["Put", "Delete"])
    }
}
