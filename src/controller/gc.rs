//! The opt-in periodic garbage collection (`--gc-period`): statements of this instance whose grant
//! no longer exists in the cluster (a finalizer removed by hand, say) are removed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::context::{Context, synced};
use crate::engine::live_owners;

/// Every `period`, once the caches are synced, until `stop`.
pub(super) async fn collect_periodically(
    ctx: Arc<Context>,
    period: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        // Only with every grant and share in the caches: a missing one would count as gone.
        if !synced(&ctx.accounts) || !ctx.index().synced() || !synced(&ctx.shares) {
            tracing::info!("garbage collection postponed: the caches are not synced yet");
            continue;
        }
        let grants: Vec<_> = ctx
            .index()
            .grants()
            .into_iter()
            .map(|g| (*g).clone())
            .collect();
        let shares: Vec<_> = ctx.shares.state().iter().map(|s| (**s).clone()).collect();
        let live = live_owners(&ctx.engine.settings().instance_id, &grants, &shares);
        let mut regions = BTreeSet::new();
        regions.extend(grants.iter().filter_map(|g| g.spec.resource.region.clone()));
        regions.extend(shares.iter().filter_map(|s| s.spec.source.region.clone()));
        let report = ctx
            .engine
            .gc(&ctx.account_directory(), &live, &regions, false)
            .await;
        let removed: usize = report
            .orphans
            .iter()
            .filter(|o| o.removed)
            .map(|o| o.sids.len())
            .sum();
        ctx.metrics.gc_removed(removed as u64);
        for orphan in &report.orphans {
            tracing::warn!(target = %orphan.arn, kind = ?orphan.kind, account = %orphan.account, sids = ?orphan.sids, removed = orphan.removed, "statements of grants that no longer exist");
        }
        for error in &report.errors {
            tracing::warn!(%error, "garbage collection could not finish here");
        }
        tracing::info!(scanned = report.scanned, removed, "garbage collection done");
    }
}
