//! End to end: the real `xacct run` process against a Kubernetes API endpoint over HTTP (the kube
//! emulator) and the AWS emulator (moto). What only a real cluster shows is listed in the README.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::{Value, json};
use support::fixtures::{AccountFixture, GrantFixture};
use support::kube_api::{KubeEmulator, eventually, free_port};
use support::process::http_get;
use support::{DATA_ACCOUNT, Moto, clients, sids};
use xacct::api::{AwsAccount, CrossAccountGrant};

const BUCKET: &str = "e2e-lake";

struct Controller(Child);

impl Controller {
    fn start(moto: &Moto, kube: &KubeEmulator, metrics_port: u16) -> Controller {
        let mut command = Command::new(env!("CARGO_BIN_EXE_xacct"));
        command
            .args([
                "run",
                "--resync-period",
                "2s",
                "--metrics-addr",
                &format!("127.0.0.1:{metrics_port}"),
            ])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KUBECONFIG", kube.kubeconfig())
            .env("XACCT_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in moto.env() {
            command.env(k, v);
        }
        Controller(command.spawn().expect("xacct run starts"))
    }

    /// SIGTERM, then the exit status.
    fn stop(mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        for _ in 0..100 {
            if let Ok(Some(status)) = self.0.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        None
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

fn account() -> AwsAccount {
    AccountFixture::data_prod().allowed(&["batch"]).build()
}

fn grant() -> CrossAccountGrant {
    GrantFixture::new("batch", "reads-lake")
        .bucket(BUCKET)
        .principals(&["role/BatchJobRole"])
        .build()
}

fn foreign() -> Value {
    json!({"Sid": "AuditorRead", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::333333333333:root"}, "Action": "s3:GetBucketLocation", "Resource": format!("arn:aws:s3:::{BUCKET}")})
}

fn condition(grant: &CrossAccountGrant, type_: &str) -> Option<(String, String)> {
    let c = grant
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)?;
    Some((c.status.clone(), c.reason.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xacct_run_converges_corrects_drift_and_revokes_on_delete() {
    let moto = Moto::start();
    let kube = KubeEmulator::start();
    let connector = moto.connector().await;
    let s3 = clients(&connector, DATA_ACCOUNT).await.s3;
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let put = |statements: Vec<Value>| {
        let s3 = s3.clone();
        async move {
            let doc = json!({"Version": "2012-10-17", "Statement": statements});
            s3.put_bucket_policy()
                .bucket(BUCKET)
                .policy(doc.to_string())
                .send()
                .await
                .unwrap();
        }
    };
    put(vec![foreign()]).await;
    let policy = || {
        let s3 = s3.clone();
        async move {
            s3.get_bucket_policy()
                .bucket(BUCKET)
                .send()
                .await
                .ok()
                .and_then(|o| o.policy)
        }
    };

    let client = kube.client();
    let accounts: Api<AwsAccount> = Api::all(client.clone());
    let grants: Api<CrossAccountGrant> = Api::namespaced(client.clone(), "batch");
    accounts
        .create(&PostParams::default(), &account())
        .await
        .unwrap();
    grants
        .create(&PostParams::default(), &grant())
        .await
        .unwrap();

    let metrics_port = free_port();
    let controller = Controller::start(&moto, &kube, metrics_port);

    // Create → the account is verified, the grant's statement appears, the grant becomes Ready.
    let ready = eventually(30, "the grant to become Ready", || async {
        let g = grants.get("reads-lake").await.ok()?;
        (condition(&g, "Ready")? == ("True".into(), "Applied".into())
            || condition(&g, "Ready")? == ("True".into(), "Converged".into()))
            .then_some(g)
    })
    .await;
    assert!(
        ready
            .metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.contains(&"xacct.dev/revoke".to_string()))
    );
    let status = ready.status.clone().unwrap();
    assert_eq!(status.observed_generation, ready.metadata.generation);
    assert_eq!(status.targets.len(), 1);
    assert_eq!(status.targets[0].arn, format!("arn:aws:s3:::{BUCKET}"));
    let ours = status.targets[0].sids.clone();
    // Read without a prefix: one statement on the bucket and its objects.
    assert_eq!(ours.len(), 1, "{ours:?}");
    let account_status = accounts.get("data-prod").await.unwrap().status.unwrap();
    assert_eq!(account_status.conditions[0].reason, "Verified");
    assert!(account_status.verified_at.is_some());
    let current = policy().await.unwrap();
    let present: Vec<Option<String>> = sids(&current);
    assert!(present.contains(&Some("AuditorRead".into())));
    for sid in &ours {
        assert!(present.contains(&Some(sid.clone())), "{sid} in {current}");
    }

    // Drift: someone removes the grant's statement; the next resync restores it.
    let mut doc: Value = serde_json::from_str(&current).unwrap();
    doc["Statement"]
        .as_array_mut()
        .unwrap()
        .retain(|s| s["Sid"] != json!(ours[0]));
    put(doc["Statement"].as_array().unwrap().clone()).await;
    eventually(20, "the removed statement to be restored", || async {
        let p = policy().await?;
        sids(&p).contains(&Some(ours[0].clone())).then_some(())
    })
    .await;
    let drifted = eventually(10, "the Drifted condition", || async {
        let g = grants.get("reads-lake").await.ok()?;
        condition(&g, "Drifted")
    })
    .await;
    assert_eq!(drifted, ("False".into(), "DriftCorrected".into()));
    let metrics = eventually(10, "the drift metric", || async {
        let text = http_get(&format!("http://127.0.0.1:{metrics_port}/metrics")).await?;
        text.contains("xacct_drift_total{event=\"corrected\"} 1")
            .then_some(text)
    })
    .await;
    assert!(metrics.contains("xacct_aws_api_calls_total{service=\"S3\",operation=\"PutBucketPolicy\",outcome=\"success\"} 2"), "{metrics}");
    assert_eq!(
        http_get(&format!("http://127.0.0.1:{metrics_port}/readyz"))
            .await
            .as_deref(),
        Some("ready")
    );

    // Delete → the statement revoked, the finalizer released, the object gone; the foreign statement stays.
    grants
        .delete("reads-lake", &DeleteParams::default())
        .await
        .unwrap();
    // (get_opt would not do: the emulator's 404 says "Object Not Found" where kube-rs expects "NotFound".)
    eventually(20, "the grant to be gone", || async {
        matches!(grants.get("reads-lake").await, Err(kube::Error::Api(e)) if e.code == 404)
            .then_some(())
    })
    .await;
    let after = policy()
        .await
        .expect("the foreign statement keeps the policy");
    assert_eq!(sids(&after), vec![Some("AuditorRead".to_string())]);

    assert_eq!(
        controller.stop(),
        Some(0),
        "SIGTERM stops the controller cleanly"
    );
}
