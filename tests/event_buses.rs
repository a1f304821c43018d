//! EventBridge event bus policies through the `xacct` binary against the AWS emulator (moto):
//! statements for the grants next to a partner's statement, written as one policy (`PutPermission`
//! with the document), xacct's statements that go removed by statement id first, nothing written
//! when converged, drift corrected, the partner's statement kept through a partial and a full
//! delete, and whether
//! the calls would be allowed decided by the independent IAM evaluator on the policy read back.
//!
//! The removal by id is what makes moto, which merges a put policy into the statements it has,
//! end with the document written, as AWS does by replacing it: this test fails without it (a
//! deleted grant's statement would stay in moto).

mod support;

use serde_json::{Value, json};
use support::fixtures::{AccountFixture, GrantFixture};
use support::iam_eval::{Request, assert_decisions, identity_policies, role_session};
use support::{
    DATA_ACCOUNT, DEV_ACCOUNT, Moto, clients, create_role, grant_reasons, json_report,
    policy_statements, run_xacct, run_xacct_ok, write_manifest, xacct_statements,
};

const BUS: &str = "orders";
const PARTNER: &str = "333333333333";

async fn policy(events: &aws_sdk_eventbridge::Client) -> Option<String> {
    events
        .describe_event_bus()
        .name(BUS)
        .send()
        .await
        .expect("the bus")
        .policy
}

fn statements(policy: &Option<String>) -> Vec<Value> {
    policy.as_deref().map(policy_statements).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_policies_keep_a_partners_statement_correct_drift_and_the_access_works() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let dev = clients(&connector, DEV_ACCOUNT).await;
    let config = connector
        .session(&support::access("setup", DATA_ACCOUNT))
        .await
        .expect("a session in the data account");
    let events = connector.events_client(&config, "us-east-1");
    let bus_arn = support::create_event_bus(&connector, DATA_ACCOUNT, BUS).await;
    events
        .put_permission()
        .event_bus_name(BUS)
        .statement_id("Partner")
        .action("events:PutEvents")
        .principal(PARTNER)
        .send()
        .await
        .expect("a partner's statement");
    let partner = statements(&policy(&events).await);
    assert_eq!(partner.len(), 1);
    for role in ["Api", "Worker", "Bystander"] {
        create_role(&dev.iam, role, "ecs-tasks.amazonaws.com").await;
    }

    let accounts = format!(
        "{}{}",
        AccountFixture::data_prod().yaml(),
        AccountFixture::dev().yaml()
    );
    let on = |name: &str, role: &str| {
        GrantFixture::new("apps", name)
            .resource("EventBus", BUS)
            .manage("dev", &[role])
            .access(&["putEvents"])
            .yaml()
    };
    let api = on("api-puts-orders", "role/Api");
    let worker = on("worker-puts-orders", "role/Worker");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let all = write_manifest(
        dir.path(),
        "all.yaml",
        &[accounts.clone(), api.clone(), worker.clone()],
    );

    let out = run_xacct(&moto, &["apply", "-f", &all, "-o", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{:?}",
        grant_reasons(&json_report(&out))
    );
    let now = statements(&policy(&events).await);
    assert!(now.contains(&partner[0]), "{now:#?}");
    let mine = xacct_statements(&now);
    assert!(!mine.is_empty(), "{now:#?}");
    for s in &mine {
        assert_eq!(s["Action"], json!("events:PutEvents"), "{s}");
        assert_eq!(s["Resource"], json!(bus_arn), "{s}");
    }

    let again = run_xacct(&moto, &["apply", "-f", &all, "-o", "json"]);
    assert!(
        grant_reasons(&json_report(&again))
            .iter()
            .all(|(_, r)| r == "Converged"),
        "{:?}",
        grant_reasons(&json_report(&again))
    );

    // Drift: xacct's statements removed by hand are written back, the partner's kept.
    for s in &mine {
        events
            .remove_permission()
            .event_bus_name(BUS)
            .statement_id(s["Sid"].as_str().unwrap_or_default())
            .send()
            .await
            .expect("drift");
    }
    let corrected = run_xacct(&moto, &["apply", "-f", &all, "-o", "json"]);
    assert!(
        grant_reasons(&json_report(&corrected))
            .iter()
            .all(|(_, r)| r == "Applied"),
        "{:?}",
        grant_reasons(&json_report(&corrected))
    );
    let now = statements(&policy(&events).await);
    assert_eq!(xacct_statements(&now), mine, "{now:#?}");
    assert!(now.contains(&partner[0]));

    let role = |name: &str| format!("arn:aws:iam::{DEV_ACCOUNT}:role/{name}");
    let decisions = async |api_allowed: bool, worker_allowed: bool| {
        let document = policy(&events).await;
        let mut requests = Vec::new();
        for (name, allowed) in [
            ("Api", api_allowed),
            ("Worker", worker_allowed),
            ("Bystander", false),
        ] {
            let arn = role(name);
            requests.push((
                Request::new(
                    format!("{name} puts events"),
                    role_session(&arn, "task").expect("a role ARN"),
                    "events:PutEvents",
                    bus_arn.clone(),
                    DATA_ACCOUNT,
                )
                .identity(&identity_policies(&dev.iam, &arn).await)
                .resource_policy(document.as_deref()),
                allowed,
            ));
        }
        assert_decisions(&requests);
    };
    decisions(true, true).await;

    // One grant deleted: its principal leaves the bus policy, the partner's statement stays.
    let only_worker = write_manifest(dir.path(), "worker.yaml", &[accounts.clone(), worker]);
    run_xacct_ok(&moto, &["delete", "-f", &only_worker]);
    let now = policy(&events).await;
    assert!(
        !now.as_deref().unwrap_or_default().contains("role/Worker"),
        "{now:?}"
    );
    assert!(statements(&now).contains(&partner[0]));
    decisions(true, false).await;

    // Everything deleted: the partner's statement alone.
    run_xacct_ok(&moto, &["delete", "-f", &all]);
    assert_eq!(statements(&policy(&events).await), partner);
    decisions(false, false).await;
}
