//! Leader election on a Lease, two in-process replicas against the kube emulator and moto: only the
//! holder acts; when it stops, the other takes over. (The emulator merges server-side apply patches
//! as plain JSON, without field ownership conflicts; kube-lease-manager's holder checks still apply.)

mod support;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use support::kube_api::{KubeEmulator, eventually, run_config};
use support::{DATA_ACCOUNT, DEV_ACCOUNT, Moto, bucket_policy, clients};
use tokio::sync::watch;
use xacct::api::{AwsAccount, CrossAccountGrant};
use xacct::controller::{LeaseConfig, RunConfig, run_with};

fn config(identity: &str) -> RunConfig {
    RunConfig {
        leader_election: Some(LeaseConfig {
            name: "xacct-controller".into(),
            namespace: "xacct-system".into(),
            identity: identity.into(),
            duration_seconds: 10,
        }),
        ..run_config(Duration::from_secs(1))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lease_holder_acts_and_the_other_takes_over() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("xacct=info")
        .with_test_writer()
        .try_init();
    let moto = Moto::start();
    let kube = KubeEmulator::start();
    let setup = moto.connector().await;
    let s3 = clients(&setup, DATA_ACCOUNT).await.s3;
    s3.create_bucket().bucket("lake").send().await.unwrap();
    let client = kube.client();
    let account: AwsAccount = serde_json::from_value(json!({"apiVersion": "xacct.dev/v1alpha1", "kind": "AwsAccount", "metadata": {"name": "data-prod"},
        "spec": {"accountId": DATA_ACCOUNT, "assumeRole": {"roleArn": format!("arn:aws:iam::{DATA_ACCOUNT}:role/xacct-manager")}, "allowedNamespaces": ["*"]}})).unwrap();
    Api::<AwsAccount>::all(client.clone())
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    let grant: CrossAccountGrant = serde_json::from_value(json!({"apiVersion": "xacct.dev/v1alpha1", "kind": "CrossAccountGrant",
        "metadata": {"name": "reads", "namespace": "batch"},
        "spec": {"resource": {"account": "data-prod", "kind": "S3Bucket", "name": "lake"}, "grantee": {"accountId": DEV_ACCOUNT}, "access": ["read"]}})).unwrap();
    Api::<CrossAccountGrant>::namespaced(client.clone(), "batch")
        .create(&PostParams::default(), &grant)
        .await
        .unwrap();

    let (a_conn, b_conn) = (moto.connector().await, moto.connector().await);
    let (a_stop, a_rx) = watch::channel(false);
    let a = tokio::spawn(run_with(
        client.clone(),
        a_conn.clone(),
        config("replica-a"),
        a_stop.clone(),
        a_rx,
    ));
    let leases: Api<Lease> = Api::namespaced(client.clone(), "xacct-system");
    eventually(20, "replica-a to hold the lease", || async {
        let lease = leases.get("xacct-controller").await.ok()?;
        (lease.spec?.holder_identity.as_deref() == Some("replica-a")).then_some(())
    })
    .await;
    let (b_stop, b_rx) = watch::channel(false);
    let b_config = config("replica-b");
    let b_health = b_config.metrics_addr;
    let b = tokio::spawn(run_with(
        client.clone(),
        b_conn.clone(),
        b_config,
        b_stop.clone(),
        b_rx,
    ));

    let policy = || bucket_policy(&s3, "lake");
    eventually(20, "the grant's statements", || async { policy().await }).await;
    tokio::time::sleep(Duration::from_secs(3)).await; // several resyncs and lease renewals
    assert!(
        b_conn.calls().snapshot().is_empty(),
        "the standby replica made no AWS call"
    );
    assert_eq!(
        http_get(b_health, "/healthz").await.as_deref(),
        Some("ok"),
        "the standby answers its probes"
    );
    assert_eq!(
        http_get(b_health, "/readyz").await.as_deref(),
        Some("ready")
    );
    assert!(
        a_conn.calls().count("GetBucketPolicy") >= 2,
        "the leader keeps resyncing"
    );

    // The leader stops (and releases the lease): the standby takes over and corrects drift.
    a_stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), a)
        .await
        .expect("replica-a stops")
        .unwrap()
        .expect("clean stop");
    eventually(20, "replica-b to hold the lease", || async {
        let lease = leases.get("xacct-controller").await.ok()?;
        (lease.spec?.holder_identity.as_deref() == Some("replica-b")).then_some(())
    })
    .await;
    s3.delete_bucket_policy()
        .bucket("lake")
        .send()
        .await
        .unwrap();
    eventually(20, "replica-b to restore the statements", || async {
        policy().await
    })
    .await;
    assert!(b_conn.calls().count("PutBucketPolicy") >= 1);
    b_stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), b)
        .await
        .expect("replica-b stops")
        .unwrap()
        .expect("clean stop");
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await.ok()?;
    body.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}
