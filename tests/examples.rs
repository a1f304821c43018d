//! Every manifest under examples/ is valid: each folder is loaded with the CLI's manifest loader
//! (as `xacct plan -f examples/FOLDER/` reads it), every object passes the CRDs' CEL rules, and
//! every grant resolves through the engine's checks (account references, namespace allow-lists,
//! principals in the grantee account) against the accounts of its own folder. Every scenario folder
//! has a README.md, and examples/README.md lists every folder. The whole of examples/ also loads as
//! one set of manifests (`xacct plan -f examples/`): an account several folders use is declared the
//! same way in each, and the binary plans them all against the AWS emulator.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kube::core::cel::ValidationErrors;
use xacct::engine::{AccountDirectory, Purpose, resolve_grant};

/// Folders whose README is not this suite's to require: the demo's manifests are documented by
/// scripts/demo.sh and the top-level README.
const WITHOUT_README: &[&str] = &["demo"];

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn folders() -> Vec<PathBuf> {
    let mut folders: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .expect("examples/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    folders
}

fn manifest_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable folder") {
        let path = entry.expect("readable entry").path();
        if path.is_dir() {
            manifest_files(&path, out);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            out.push(path);
        }
    }
}

fn describe(errors: &ValidationErrors) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field_path, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

fn name(folder: &Path) -> String {
    folder.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn every_example_loads_passes_the_crd_rules_and_resolves() {
    let folders = folders();
    assert!(folders.len() >= 5, "{folders:?}");
    let mut loaded_files = BTreeSet::new();
    for folder in &folders {
        let manifests = xacct::cli::load(std::slice::from_ref(folder));
        let errors: Vec<String> = manifests.errors.iter().map(ToString::to_string).collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", folder.display());
        assert!(
            !manifests.accounts.is_empty()
                && (!manifests.grants.is_empty() || !manifests.shares.is_empty()),
            "{}: an example has accounts and grants or snapshot shares",
            folder.display()
        );

        for (account, origin) in &manifests.accounts {
            if let Err(e) = account.validate_cel() {
                panic!(
                    "{origin}: AwsAccount breaks the CRD rules: {}",
                    describe(&e)
                );
            }
            loaded_files.insert(origin.split('#').next().unwrap().to_string());
        }
        let directory = AccountDirectory::new(manifests.accounts.iter().map(|(a, _)| a.clone()));
        let invalid: Vec<_> = directory.invalid().collect();
        assert!(invalid.is_empty(), "{}: {invalid:?}", folder.display());

        for input in &manifests.grants {
            let grant = &input.grant;
            if let Err(e) = grant.validate_cel() {
                panic!(
                    "{}: CrossAccountGrant breaks the CRD rules: {}",
                    input.origin,
                    describe(&e)
                );
            }
            if let Err(e) = resolve_grant(grant, &directory, "default", Purpose::Grant) {
                panic!("{}: the engine refuses the grant: {e}", input.origin);
            }
            loaded_files.insert(input.origin.split('#').next().unwrap().to_string());
        }

        for input in &manifests.shares {
            let share = &input.share;
            if let Err(e) = share.validate_cel() {
                panic!(
                    "{}: SnapshotShare breaks the CRD rules: {}",
                    input.origin,
                    describe(&e)
                );
            }
            let account = directory
                .get(&share.spec.source.account)
                .unwrap_or_else(|| {
                    panic!(
                        "{}: no AwsAccount {}",
                        input.origin, share.spec.source.account
                    )
                });
            let namespace = share.metadata.namespace.as_deref().unwrap_or("default");
            assert!(
                xacct::engine::namespace_allowed(account, namespace),
                "{}: namespace {namespace} not allowed",
                input.origin
            );
            loaded_files.insert(input.origin.split('#').next().unwrap().to_string());
        }
    }

    // Every manifest file under examples/ was read, and held at least one object.
    let mut files = Vec::new();
    manifest_files(&examples_dir(), &mut files);
    for file in files {
        assert!(
            loaded_files.contains(&file.display().to_string()),
            "{} holds no AwsAccount, CrossAccountGrant or SnapshotShare ({loaded_files:?})",
            file.display()
        );
    }
}

#[test]
fn every_scenario_folder_has_a_readme_and_is_listed() {
    let index = std::fs::read_to_string(examples_dir().join("README.md"))
        .expect("examples/README.md exists");
    for folder in folders() {
        let name = name(&folder);
        assert!(
            index.contains(&format!("`{name}/`")),
            "examples/README.md does not list {name}/"
        );
        if WITHOUT_README.contains(&name.as_str()) {
            continue;
        }
        let readme = folder.join("README.md");
        let text = std::fs::read_to_string(&readme)
            .unwrap_or_else(|_| panic!("{} is missing", readme.display()));
        assert!(
            text.starts_with("# "),
            "{} starts with a title",
            readme.display()
        );
    }
    // What is not implemented (SageMaker model package groups) is said, not exemplified.
    assert!(index.contains("model package group"));
    assert!(
        folders()
            .iter()
            .all(|f| !name(f).to_lowercase().contains("package"))
    );
}

#[test]
fn the_scenario_readmes_say_which_workload_role_needs_which_grant() {
    for folder in folders() {
        // Sharing snapshots is between accounts: no workload role is named (its README says so).
        if WITHOUT_README.contains(&name(&folder).as_str()) || name(&folder) == "rds-snapshot-share"
        {
            continue;
        }
        let text = std::fs::read_to_string(folder.join("README.md")).unwrap();
        for role in [
            "job role",
            "execution role",
            "task role",
            "instance role",
            "instance profile",
        ] {
            assert!(
                text.to_lowercase().contains(role),
                "{}/README.md does not mention the {role}",
                folder.display()
            );
        }
    }
}

#[test]
fn the_whole_examples_folder_loads_as_one_set_of_manifests() {
    let all = xacct::cli::load(&[examples_dir()]);
    let errors: Vec<String> = all.errors.iter().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "examples/: {errors:#?}");

    // Nothing was dropped: every folder's grants and shares, and each account once.
    let mut accounts = BTreeSet::new();
    let (mut grants, mut shares) = (0, 0);
    for folder in folders() {
        let m = xacct::cli::load(std::slice::from_ref(&folder));
        accounts.extend(m.accounts.iter().map(|(a, _)| a.metadata.name.clone()));
        grants += m.grants.len();
        shares += m.shares.len();
    }
    let names: BTreeSet<_> = all
        .accounts
        .iter()
        .map(|(a, _)| a.metadata.name.clone())
        .collect();
    assert_eq!(names, accounts);
    assert_eq!(all.accounts.len(), accounts.len());
    assert_eq!((all.grants.len(), all.shares.len()), (grants, shares));

    // And every grant still resolves against the accounts of all folders together.
    let directory = AccountDirectory::new(all.accounts.iter().map(|(a, _)| a.clone()));
    for input in &all.grants {
        if let Err(e) = resolve_grant(&input.grant, &directory, "default", Purpose::Grant) {
            panic!(
                "{}: the engine refuses the grant next to the other folders: {e}",
                input.origin
            );
        }
    }
}

#[test]
fn xacct_plan_plans_the_whole_examples_folder_against_the_emulator() {
    let moto = support::Moto::start();
    let with_moto = |command: &mut std::process::Command| {
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in moto.env() {
            command.env(k, v);
        }
    };
    // What the examples name, created in their accounts and regions.
    let mut setup = std::process::Command::new(support::process::python());
    setup.arg(support::process::root().join("tests/support/examples_aws.py"));
    with_moto(&mut setup);
    let out = setup.output().expect("the setup script runs");
    assert!(
        out.status.success(),
        "setup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("setup prints JSON");
    let key_id = created["keyId"].as_str().expect("keyId");
    // The examples as they are, but for the key ARN's placeholder id, which the emulator cannot take.
    let dir = tempfile::tempdir().unwrap();
    let examples = dir.path().join("examples");
    support::copy_manifests(&examples_dir(), &examples, support::KEY_PLACEHOLDER, key_id);

    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_xacct"));
    command
        .args(["plan", "-f", "examples/", "-o", "json"])
        .current_dir(dir.path());
    with_moto(&mut command);
    let output = command.output().expect("xacct runs");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert_eq!(report["errors"], serde_json::json!([]), "manifest errors");
    let all = xacct::cli::load(&[examples_dir()]);
    let grants = report["grants"].as_array().expect("grants");
    let shares = report["shares"].as_array().expect("shares");
    assert_eq!(
        (grants.len(), shares.len()),
        (all.grants.len(), all.shares.len())
    );
    // Nothing is applied yet: every grant and share has changes pending, none failed.
    let mut failed = Vec::new();
    for item in grants.iter().chain(shares) {
        let ready = &item["conditions"][0];
        if ready["reason"] != "Pending" {
            failed.push(format!(
                "{}: {} {}",
                item["name"], ready["reason"], ready["message"]
            ));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
    assert_eq!(
        output.status.code(),
        Some(2),
        "changes pending, no error: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
