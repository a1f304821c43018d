//! Lambda function policies through the `xacct` binary against the AWS emulator (moto). Lambda
//! writes a function policy statement by statement (`AddPermission`, `RemovePermission` by
//! statement id): xacct adds one statement per action and principal, named by its Sid, removes
//! only its own, and leaves a foreign statement (here one a bucket notification needs) as it is
//! through apply, a second apply (nothing to write), drift correction (one statement added back),
//! a partial delete and a full delete. Whether
//! the calls would be allowed is decided by the independent IAM evaluator on the policies read back.

mod support;

use serde_json::{Value, json};
use support::fixtures::{AccountFixture, GrantFixture};
use support::iam_eval::{Request, assert_decisions, identity_policies, role_session};
use support::{
    DATA_ACCOUNT, DEV_ACCOUNT, Moto, clients, create_role, grant_reasons, json_report,
    policy_statements, run_xacct, run_xacct_ok, write_manifest, xacct_statements,
};

const FUNCTION: &str = "resize";
const ORG: &str = "o-a1b2c3d4e5";

/// The function's policy statements (none without a policy).
async fn statements(lambda: &aws_sdk_lambda::Client) -> Vec<Value> {
    match lambda.get_policy().function_name(FUNCTION).send().await {
        Ok(out) => policy_statements(out.policy().unwrap_or("{}")),
        Err(_) => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_policies_are_written_statement_by_statement_and_the_access_works() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let data = clients(&connector, DATA_ACCOUNT).await;
    let dev = clients(&connector, DEV_ACCOUNT).await;
    let config = connector
        .session(&support::access("setup", DATA_ACCOUNT))
        .await
        .expect("a session in the data account");
    let lambda = connector.lambda_client(&config, "us-east-1");
    let execution = create_role(&data.iam, "ResizeExecution", "lambda.amazonaws.com").await;
    let function_arn =
        support::create_function(&connector, DATA_ACCOUNT, FUNCTION, &execution).await;
    // Someone's statement: S3 may invoke it for a bucket's notifications.
    lambda
        .add_permission()
        .function_name(FUNCTION)
        .statement_id("S3Notifications")
        .action("lambda:InvokeFunction")
        .principal("s3.amazonaws.com")
        .source_arn("arn:aws:s3:::uploads")
        .send()
        .await
        .expect("a foreign statement");
    let foreign = statements(&lambda).await;
    assert_eq!(foreign.len(), 1);
    for role in ["Api", "Worker", "Batch", "Bystander"] {
        create_role(&dev.iam, role, "ecs-tasks.amazonaws.com").await;
    }

    let accounts = format!(
        "{}{}",
        AccountFixture::data_prod()
            .extra(json!({"allowedOrganizations": [ORG]}))
            .yaml(),
        AccountFixture::dev().yaml()
    );
    let on = |name: &str, roles: &[&str]| {
        GrantFixture::new("apps", name)
            .resource("LambdaFunction", FUNCTION)
            .manage("dev", roles)
            .access(&["invoke"])
            .yaml()
    };
    let api = on("api-invokes-resize", &["role/Api"]);
    let workers = on("workers-invoke-resize", &["role/Worker", "role/Batch"]);
    let org = GrantFixture::new("apps", "org-invokes-resize")
        .resource("LambdaFunction", FUNCTION)
        .access(&["invoke"])
        .extra(json!({"grantee": {"organization": {"id": ORG}}}))
        .yaml();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let all = write_manifest(
        dir.path(),
        "all.yaml",
        &[accounts.clone(), api.clone(), workers.clone(), org.clone()],
    );

    let out = run_xacct(&moto, &["apply", "-f", &all, "-o", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{:?}",
        grant_reasons(&json_report(&out))
    );
    assert!(
        grant_reasons(&json_report(&out))
            .iter()
            .all(|(_, r)| r == "Applied"),
        "{:?}",
        grant_reasons(&json_report(&out))
    );

    // One statement per principal, on the function, next to the foreign one as it was.
    let now = statements(&lambda).await;
    assert!(now.contains(&foreign[0]), "{now:#?}");
    let mine = xacct_statements(&now);
    assert_eq!(mine.len(), 4, "{now:#?}");
    for s in &mine {
        assert_eq!(s["Action"], json!("lambda:InvokeFunction"), "{s}");
        assert_eq!(s["Resource"], json!(function_arn), "{s}");
    }
    let org_statement: Vec<&Value> = mine
        .iter()
        .filter(|s| s["Condition"]["StringEquals"]["aws:PrincipalOrgID"] == json!(ORG))
        .collect();
    assert_eq!(org_statement.len(), 1, "{mine:#?}");

    // Converged: nothing to write.
    let again = run_xacct(&moto, &["apply", "-f", &all, "-o", "json"]);
    assert!(
        grant_reasons(&json_report(&again))
            .iter()
            .all(|(_, r)| r == "Converged"),
        "{:?}",
        grant_reasons(&json_report(&again))
    );

    // Drift: one of xacct's statements removed by hand is added back, alone.
    let removed = mine[0]["Sid"].as_str().unwrap_or_default().to_string();
    lambda
        .remove_permission()
        .function_name(FUNCTION)
        .statement_id(&removed)
        .send()
        .await
        .expect("drift");
    let corrected = run_xacct(&moto, &["apply", "-f", &all, "-o", "json"]);
    assert_eq!(
        grant_reasons(&json_report(&corrected))
            .iter()
            .filter(|(_, r)| r == "Applied")
            .count(),
        1,
        "{:?}",
        grant_reasons(&json_report(&corrected))
    );
    let now = statements(&lambda).await;
    assert_eq!(xacct_statements(&now).len(), 4, "{now:#?}");
    assert!(now.iter().any(|s| s["Sid"] == json!(removed)));
    assert!(now.contains(&foreign[0]));

    // What AWS would decide, both sides read back from the emulator.
    let role = |name: &str| format!("arn:aws:iam::{DEV_ACCOUNT}:role/{name}");
    let decisions = async |api_allowed: bool, workers_allowed: bool| {
        let policy =
            serde_json::json!({"Version": "2012-10-17", "Statement": statements(&lambda).await})
                .to_string();
        let mut requests = Vec::new();
        for (name, allowed) in [
            ("Api", api_allowed),
            ("Worker", workers_allowed),
            ("Batch", workers_allowed),
            ("Bystander", false),
        ] {
            let arn = role(name);
            requests.push((
                Request::new(
                    format!("{name} invokes"),
                    role_session(&arn, "task").expect("a role ARN"),
                    "lambda:InvokeFunction",
                    function_arn.clone(),
                    DATA_ACCOUNT,
                )
                .identity(&identity_policies(&dev.iam, &arn).await)
                .resource_policy(Some(&policy)),
                allowed,
            ));
        }
        assert_decisions(&requests);
    };
    decisions(true, true).await;

    // One grant deleted: its two statements go, the others and the foreign one stay.
    let only_workers = write_manifest(dir.path(), "workers.yaml", &[accounts.clone(), workers]);
    run_xacct_ok(&moto, &["delete", "-f", &only_workers]);
    let now = statements(&lambda).await;
    assert_eq!(xacct_statements(&now).len(), 2, "{now:#?}");
    assert!(now.contains(&foreign[0]));
    decisions(true, false).await;

    // Everything deleted: only the foreign statement is left.
    run_xacct_ok(&moto, &["delete", "-f", &all]);
    assert_eq!(statements(&lambda).await, foreign);
    decisions(false, false).await;
}
