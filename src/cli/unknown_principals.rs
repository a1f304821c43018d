//! `apply` and `delete` ride out AWS refusing a principal it does not know (yet): IAM takes
//! seconds, sometimes minutes, to make a role created moments ago known to S3, ECR, KMS and IAM's
//! own trust policies.
//!
//! A refused document holds every grant on that policy, so each refused grant is first run alone:
//! the others converge, and only the grants naming the unknown principal stay refused. Those are
//! tried again with growing waits until `--principal-wait` is over, then reported as failed
//! (`PrincipalNotFound`).

use std::time::{Duration, Instant};

use super::logging;
use crate::engine::{
    AccountDirectory, Engine, GrantInput, Operation, Reason, Report, TargetReport,
};

/// The first wait before trying a refused grant again; it doubles up to [`LONGEST_WAIT`].
const FIRST_WAIT: Duration = Duration::from_secs(1);
const LONGEST_WAIT: Duration = Duration::from_secs(30);

/// `report` (of `grants`, in order) once the grants refused for an unknown principal were run
/// alone and, while `principal_wait` lasts, again until AWS accepts them.
pub async fn ride_out(
    engine: &Engine,
    accounts: &AccountDirectory,
    grants: &[GrantInput],
    operation: Operation,
    mut report: Report,
) -> Report {
    // A wait too long to represent is as good as forever.
    let deadline = Instant::now().checked_add(engine.settings().principal_wait);
    let mut wait = None;
    loop {
        let refused: Vec<usize> = report
            .grants
            .iter()
            .enumerate()
            .filter(|(_, g)| {
                g.ready()
                    .is_some_and(|c| c.reason == Reason::PrincipalNotFound)
            })
            .map(|(i, _)| i)
            .collect();
        if refused.is_empty() {
            return report;
        }
        if let Some(delay) = wait {
            if deadline.is_some_and(|d| Instant::now() + delay > d) {
                return report;
            }
            for &i in &refused {
                let grant = &report.grants[i];
                let message = grant
                    .ready()
                    .map(|c| c.message.as_str())
                    .unwrap_or_default();
                logging::eprint(&format!(
                    "{}: {message}; trying again in {}\n",
                    grant.name,
                    humantime::format_duration(delay)
                ));
            }
            tokio::time::sleep(delay).await;
        }
        wait = Some(wait.map_or(FIRST_WAIT, |w: Duration| (w * 2).min(LONGEST_WAIT)));
        report.targets.retain(|t| !refused_for_a_principal(t));
        for i in refused {
            let alone = engine
                .run(accounts, std::slice::from_ref(&grants[i]), operation, false)
                .await;
            report.targets.extend(alone.targets);
            if let Some(result) = alone.grants.into_iter().next() {
                report.grants[i] = result;
            }
        }
    }
}

fn refused_for_a_principal(target: &TargetReport) -> bool {
    target
        .error
        .as_ref()
        .is_some_and(|e| e.reason == Reason::PrincipalNotFound)
}
