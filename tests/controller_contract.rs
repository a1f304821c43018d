//! Request contracts of the run on one resource key against a mocked Kubernetes API (kube-rs's
//! tower-test pattern): each scenario checks the method, path and body of every request the run
//! makes, in order, and answers like the API server. AWS is the real emulator (moto).

mod support;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use http::{Method, Request, Response};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::client::Body;
use kube::runtime::events::Reporter;
use kube::runtime::reflector;
use kube::runtime::watcher;
use serde_json::{Value, json};
use support::fixtures::{AccountFixture, GrantFixture};
use support::{DATA_ACCOUNT, Moto, clients};
use tower_test::mock::{self, Handle};
use xacct::api::{AwsAccount, CrossAccountGrant};
use xacct::aws::AwsPolicies;
use xacct::controller::backoff::Backoff;
use xacct::controller::index::GrantIndex;
use xacct::controller::queue::PolicyRun;
use xacct::controller::{Context, Metrics, ReconcileSettings, run};
use xacct::engine::{Engine, EngineSettings};

type ApiHandle = Handle<Request<Body>, Response<Body>>;

const NOW: i64 = 1_800_000_000;

/// data-prod as the controller's cache holds it once verified: grants from `batch` only.
fn account() -> AwsAccount {
    AccountFixture::data_prod()
        .no_region()
        .allowed(&["batch"])
        .verified()
        .build()
}

/// The grant `batch/reads` on the bucket `lake` as the API server serves it, with xacct's
/// finalizer when `finalized`.
fn grant(finalized: bool, principals: &[&str]) -> CrossAccountGrant {
    let finalizers: &[&str] = if finalized {
        &["xacct.dev/revoke"]
    } else {
        &[]
    };
    GrantFixture::new("batch", "reads")
        .bucket("lake")
        .principals(principals)
        .metadata(json!({"uid": "u-1", "generation": 1, "resourceVersion": "10", "finalizers": finalizers}))
        .build()
}

async fn context(moto: &Moto) -> (Arc<Context>, ApiHandle) {
    context_with(moto, account()).await
}

async fn context_with(moto: &Moto, account: AwsAccount) -> (Arc<Context>, ApiHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let connector = moto.connector().await;
    let (accounts, mut account_writer) = reflector::store();
    account_writer.apply_watcher_event(&watcher::Event::Init);
    account_writer.apply_watcher_event(&watcher::Event::InitApply(account));
    account_writer.apply_watcher_event(&watcher::Event::InitDone);
    let (shares, _share_writer) = reflector::store::<xacct::api::SnapshotShare>();
    let index = Arc::new(RwLock::new(GrantIndex::default()));
    let engine = Engine::new(
        Arc::new(AwsPolicies::new(connector.clone())),
        EngineSettings::default(),
    );
    let ctx = Context {
        client: client.clone(),
        engine,
        connector: connector.clone(),
        reporter: Reporter {
            controller: "xacct".into(),
            instance: None,
        },
        metrics: Arc::new(Metrics::new(connector.calls().clone(), index.clone())),
        settings: ReconcileSettings {
            resync: Duration::from_secs(300),
            secrets_namespace: "xacct-system".into(),
        },
        accounts,
        index,
        shares,
        external_ids: RwLock::default(),
        backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
        clock: Arc::new(|| Timestamp::from_second(NOW).expect("valid time")),
    };
    (Arc::new(ctx), handle)
}

/// The run on `grant`'s key, with the grant in the index as the watch would have put it.
fn run_on(
    ctx: &Arc<Context>,
    grant: CrossAccountGrant,
) -> tokio::task::JoinHandle<
    Result<kube::runtime::controller::Action, xacct::controller::ControllerError>,
> {
    let key = {
        let mut index = ctx.index_mut();
        index.apply_grant(grant.clone());
        index.key_of(&grant.spec.resource)
    };
    tokio::spawn(run::reconcile(Arc::new(PolicyRun::new(key)), ctx.clone()))
}

async fn next(
    handle: &mut ApiHandle,
) -> (
    Request<Body>,
    Value,
    tower_test::mock::SendResponse<Response<Body>>,
) {
    let (request, send) = tokio::time::timeout(Duration::from_secs(10), handle.next_request())
        .await
        .expect("a request within 10 s")
        .expect("the client is alive");
    let (parts, body) = request.into_parts();
    let bytes = body.collect_bytes().await.expect("body");
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("JSON body")
    };
    (Request::from_parts(parts, Body::empty()), value, send)
}

fn respond(send: tower_test::mock::SendResponse<Response<Body>>, body: &Value) {
    send.send_response(
        Response::builder()
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

/// The requeue delay of `action`, in seconds (kube's `Action` only shows it in its Debug form, a
/// `Duration`'s: `300s`, `299.87s`, `996.1ms`, `12µs`, `5ns`).
fn requeue_seconds(action: &kube::runtime::controller::Action) -> f64 {
    let text = format!("{action:?}");
    let shown = text
        .split_once("Some(")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(shown, _)| shown)
        .unwrap_or_else(|| panic!("no requeue delay in {text}"));
    let units = [("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9), ("s", 1.0)];
    units
        .iter()
        .find_map(|(unit, scale)| {
            let number: f64 = shown.strip_suffix(unit)?.parse().ok()?;
            Some(number * scale)
        })
        .unwrap_or_else(|| panic!("cannot read the requeue delay in {text}"))
}

async fn no_more_requests(handle: &mut ApiHandle) {
    let more = tokio::time::timeout(Duration::from_millis(300), handle.next_request()).await;
    assert!(
        more.is_err() || more.as_ref().is_ok_and(Option::is_none),
        "unexpected extra request"
    );
}

#[tokio::test]
async fn the_finalizer_is_added_before_any_aws_call() {
    let moto = Moto::start();
    let (ctx, mut handle) = context(&moto).await;
    let reconcile = run_on(&ctx, grant(false, &["role/JobRole"]));

    let (request, body, send) = next(&mut handle).await;
    assert_eq!(request.method(), Method::PATCH);
    assert_eq!(
        request.uri().path(),
        "/apis/xacct.dev/v1alpha1/namespaces/batch/crossaccountgrants/reads"
    );
    let ops = body.as_array().expect("a JSON patch");
    assert_eq!(
        ops[0],
        json!({"op": "test", "path": "/metadata/finalizers", "value": []}),
        "it fails if another writer changed the finalizers meanwhile"
    );
    assert!(
        ops.iter()
            .any(|op| op["op"] == "add" && op["value"] == json!("xacct.dev/revoke")),
        "{body}"
    );
    assert!(
        ctx.connector.calls().snapshot().is_empty(),
        "no AWS call before the finalizer is in place"
    );
    respond(
        send,
        &serde_json::to_value(grant(true, &["role/JobRole"])).unwrap(),
    );

    // The same run goes on: the bucket does not exist, which it reports.
    let (request, event, send) = next(&mut handle).await;
    assert_eq!(request.method(), Method::POST);
    assert_eq!(event["reason"], "NotFound", "{event}");
    assert!(
        ctx.connector.calls().count("GetBucketPolicy") >= 1,
        "AWS is called once the finalizer is there"
    );
    respond(send, &event);
    let (request, _, send) = next(&mut handle).await;
    assert!(request.uri().path().ends_with("/reads/status"));
    respond(
        send,
        &serde_json::to_value(grant(true, &["role/JobRole"])).unwrap(),
    );
    reconcile.await.unwrap().expect("the run succeeds");
    no_more_requests(&mut handle).await;
}

#[tokio::test]
async fn a_converged_grant_publishes_applied_and_writes_its_status_by_server_side_apply() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    clients(&connector, DATA_ACCOUNT)
        .await
        .s3
        .create_bucket()
        .bucket("lake")
        .send()
        .await
        .unwrap();
    let (ctx, mut handle) = context(&moto).await;
    let reconcile = run_on(&ctx, grant(true, &["role/JobRole"]));

    let (request, event, send) = next(&mut handle).await;
    assert_eq!(request.method(), Method::POST);
    assert_eq!(
        request.uri().path(),
        "/apis/events.k8s.io/v1/namespaces/batch/events"
    );
    assert_eq!(
        (event["type"].as_str(), event["reason"].as_str()),
        (Some("Normal"), Some("Applied")),
        "{event}"
    );
    assert_eq!(event["regarding"]["name"], "reads");
    assert!(
        event["note"]
            .as_str()
            .unwrap()
            .contains("arn:aws:s3:::lake")
    );
    assert_eq!(
        ctx.connector.calls().count("PutBucketPolicy"),
        1,
        "the event follows the write"
    );
    respond(send, &event);

    let (request, patch, send) = next(&mut handle).await;
    assert_eq!(request.method(), Method::PATCH);
    assert_eq!(
        request.uri().path(),
        "/apis/xacct.dev/v1alpha1/namespaces/batch/crossaccountgrants/reads/status"
    );
    let query = request.uri().query().unwrap_or_default();
    assert!(
        query.contains("fieldManager=xacct") && query.contains("force=true"),
        "{query}"
    );
    assert_eq!(
        request.headers()["content-type"],
        "application/apply-patch+yaml"
    );
    assert_eq!(
        (patch["apiVersion"].as_str(), patch["kind"].as_str()),
        (Some("xacct.dev/v1alpha1"), Some("CrossAccountGrant"))
    );
    let status = &patch["status"];
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(
        status["conditions"],
        json!([{"type": "Ready", "status": "True", "reason": "Applied", "observedGeneration": 1,
                "lastTransitionTime": "2027-01-15T08:00:00Z",
                "message": "1 statement(s) in arn:aws:s3:::lake written"}])
    );
    assert_eq!(status["targets"][0]["arn"], "arn:aws:s3:::lake");
    assert_eq!(status["targets"][0]["resource"]["name"], "lake");
    // Read without a prefix: one statement on the bucket and its objects.
    assert_eq!(status["targets"][0]["sids"].as_array().unwrap().len(), 1);
    assert_eq!(status["targets"][0]["lastApplied"], "2027-01-15T08:00:00Z");
    respond(
        send,
        &json!({"apiVersion": "xacct.dev/v1alpha1", "kind": "CrossAccountGrant", "metadata": {"name": "reads", "namespace": "batch"}, "spec": grant(true, &[]).spec, "status": status}),
    );

    let action = reconcile.await.unwrap().expect("reconcile succeeds");
    // The key's next look is its resync.
    let after = requeue_seconds(&action);
    assert!(
        after > 290.0 && after <= 300.0,
        "checked again after the resync period: {action:?}"
    );
    no_more_requests(&mut handle).await;
}

#[tokio::test]
async fn an_invalid_spec_makes_no_aws_call_warns_and_waits_for_the_resync() {
    let moto = Moto::start();
    let (ctx, mut handle) = context(&moto).await;
    // A principal in another account than the grantee's.
    let reconcile = run_on(&ctx, grant(true, &["arn:aws:iam::333333333333:role/X"]));

    let (request, event, send) = next(&mut handle).await;
    assert_eq!(request.method(), Method::POST);
    assert_eq!(
        (event["type"].as_str(), event["reason"].as_str()),
        (Some("Warning"), Some("InvalidSpec"))
    );
    assert!(
        event["note"]
            .as_str()
            .unwrap()
            .contains("spec.grantee.principals[0]")
    );
    respond(send, &event);

    let (request, patch, send) = next(&mut handle).await;
    assert!(
        request
            .uri()
            .path()
            .ends_with("/crossaccountgrants/reads/status")
    );
    assert_eq!(patch["status"]["conditions"][0]["reason"], "InvalidSpec");
    assert_eq!(patch["status"]["conditions"][0]["status"], "False");
    respond(
        send,
        &json!({"apiVersion": "xacct.dev/v1alpha1", "kind": "CrossAccountGrant", "metadata": {"name": "reads", "namespace": "batch"}, "spec": grant(true, &[]).spec}),
    );

    let action = reconcile.await.unwrap().expect("reconcile succeeds");
    let after = requeue_seconds(&action);
    assert!(
        after > 290.0 && after <= 300.0,
        "no backoff loop on a bad spec: only the resync period: {action:?}"
    );
    assert!(
        ctx.connector.calls().snapshot().is_empty(),
        "nothing is read or written for an invalid grant"
    );
    no_more_requests(&mut handle).await;
}

#[tokio::test]
async fn run_fails_fast_when_the_crds_are_not_installed() {
    let moto = Moto::start();
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let config = support::kube_api::run_config(Duration::from_secs(300));
    let run = tokio::spawn(xacct::controller::run_with(
        client,
        moto.connector().await,
        config,
        stop,
        stop_rx,
    ));
    let (request, _, send) = next(&mut handle).await;
    assert!(
        request
            .uri()
            .path()
            .starts_with("/apis/xacct.dev/v1alpha1/crossaccountgrants"),
        "{}",
        request.uri()
    );
    let not_found = json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 404, "reason": "NotFound",
                           "message": "the server could not find the requested resource"});
    send.send_response(
        Response::builder()
            .status(404)
            .body(Body::from(serde_json::to_vec(&not_found).unwrap()))
            .unwrap(),
    );
    let error = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("returns at once")
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(error, xacct::controller::ControllerError::CrdsMissing(_)),
        "{error}"
    );
    assert!(
        error.to_string().contains("kubectl apply -f crds/"),
        "{error}"
    );
    no_more_requests(&mut handle).await;
}

#[tokio::test]
async fn a_sharded_controller_watches_one_namespace_with_a_label_selector() {
    let moto = Moto::start();
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let config = xacct::controller::RunConfig {
        namespace: Some("batch".into()),
        selector: Some("shard=a".into()),
        ..support::kube_api::run_config(Duration::from_secs(300))
    };
    let run = tokio::spawn(xacct::controller::run_with(
        client,
        moto.connector().await,
        config,
        stop.clone(),
        stop_rx,
    ));
    let empty = json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": []});
    let mut grant_lists = Vec::new();
    for _ in 0..6 {
        let (request, _, send) = next(&mut handle).await;
        if request.uri().path().contains("crossaccountgrants")
            && request
                .uri()
                .query()
                .is_some_and(|q| !q.contains("limit=1"))
        {
            grant_lists.push(request.uri().to_string());
        }
        respond(send, &empty);
        if !grant_lists.is_empty() {
            break;
        }
    }
    let uri = grant_lists.first().expect("the controller lists grants");
    assert!(
        uri.starts_with("/apis/xacct.dev/v1alpha1/namespaces/batch/crossaccountgrants?"),
        "{uri}"
    );
    assert!(uri.contains("labelSelector=shard%3Da"), "{uri}");
    stop.send(true).unwrap();
    run.abort();
}

#[tokio::test]
async fn a_grant_whose_account_is_not_ready_looks_again_soon_with_backoff() {
    // The trigger of the account becoming Ready comes from another watch than the account cache,
    // and may arrive first: the grant must not wait for the resync to look again.
    let moto = Moto::start();
    let mut unverified = account();
    unverified.status = None;
    let (ctx, mut handle) = context_with(&moto, unverified).await;
    let mut delays = Vec::new();
    for _ in 0..2 {
        let mut waiting = grant(true, &["role/JobRole"]);
        // A new generation each time, so that its status is written again.
        waiting.metadata.generation = Some(delays.len() as i64 + 1);
        let reconcile = run_on(&ctx, waiting);
        // Answer whatever it asks (its event, its status) with the grant, until it is done.
        let serve = async {
            while let Some((request, send)) = handle.next_request().await {
                let body = request.into_body().collect_bytes().await.unwrap();
                let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if let Some(reason) = value["status"]["conditions"][0]["reason"].as_str() {
                    assert_eq!(reason, "AccountNotReady");
                }
                respond(send, &serde_json::to_value(grant(true, &[])).unwrap());
            }
        };
        let action = tokio::select! {
            done = reconcile => done.unwrap().expect("reconcile succeeds"),
            _ = serve => panic!("the API client went away"),
        };
        delays.push(requeue_seconds(&action));
    }
    // Backoff from 1 s (±20%), doubling: far below the 300 s resync.
    assert!((0.8..=1.2).contains(&delays[0]), "{delays:?}");
    assert!((1.6..=2.4).contains(&delays[1]), "{delays:?}");
    assert!(
        ctx.connector.calls().snapshot().is_empty(),
        "nothing is read or written while the account is not Ready"
    );
}
