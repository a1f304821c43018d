//! `xacct gc`: statements of this instance whose grant is in none of the manifests.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::{Output, RunArgs, emit, prepare};
use crate::engine::{GcReport, live_owners};

/// Options of `xacct gc`.
#[derive(Debug, clap::Args)]
pub struct GcArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// List the orphaned statements; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Regions to look in besides each account's own and those the manifests name
    /// (comma-separated or repeated).
    #[arg(long = "region", value_delimiter = ',')]
    pub regions: Vec<String>,
}

/// Runs `xacct gc`; returns the exit status.
pub async fn run(args: GcArgs) -> i32 {
    let prepared = prepare(&args.run).await;
    // A grant that cannot be read is still a grant: collecting without it could remove its
    // statements. Refuse.
    if !prepared.errors.is_empty() {
        for error in &prepared.errors {
            super::logging::eprint(&format!("error: {error}\n"));
        }
        super::logging::eprint(
            "xacct gc: nothing was looked at: every manifest must be readable, or the grants in it would count as gone\n",
        );
        return 1;
    }
    let manifests = &prepared.manifests;
    let grants: Vec<_> = manifests.grants.iter().map(|g| g.grant.clone()).collect();
    let shares: Vec<_> = manifests.shares.iter().map(|s| s.share.clone()).collect();
    let instance = &prepared.engine.settings().instance_id;
    let live = live_owners(instance, &grants, &shares);
    let mut regions: BTreeSet<String> = args.regions.iter().cloned().collect();
    regions.extend(grants.iter().filter_map(|g| g.spec.resource.region.clone()));
    regions.extend(shares.iter().filter_map(|s| s.spec.source.region.clone()));
    let report = prepared
        .engine
        .gc(&prepared.accounts, &live, &regions, args.dry_run)
        .await;
    match args.run.output {
        Output::Json => emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        )),
        Output::Text => emit(&text(&report)),
    }
    if !report.errors.is_empty() {
        1
    } else if args.dry_run && !report.orphans.is_empty() {
        2
    } else {
        0
    }
}

fn text(report: &GcReport) -> String {
    let mut out = String::new();
    for orphan in &report.orphans {
        let what = match (report.dry_run, orphan.removed) {
            (true, _) => "would remove",
            (false, true) => "removed",
            (false, false) => "NOT removed",
        };
        let _ = writeln!(
            out,
            "{} ({:?} in {}): {what} {} statement(s) of grants that no longer exist",
            orphan.arn,
            orphan.kind,
            orphan.account,
            orphan.sids.len()
        );
        for sid in &orphan.sids {
            let _ = writeln!(out, "  - {sid}");
        }
    }
    for error in &report.errors {
        let _ = writeln!(out, "error: {error}");
    }
    let _ = writeln!(
        out,
        "\nGarbage collection: {} policies looked at, {} orphaned statement(s) in {} of them{}.",
        report.scanned,
        report.statements(),
        report.orphans.len(),
        if report.dry_run { " (dry run)" } else { "" }
    );
    out
}
