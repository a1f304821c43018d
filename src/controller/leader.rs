//! Leader election on a `coordination.k8s.io` Lease (kube-lease-manager): only the holder runs the
//! controllers; a replica that loses the lease stops, so two never act at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::error::ControllerError;

/// Which Lease, and who we are.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Lease name.
    pub name: String,
    /// Lease namespace.
    pub namespace: String,
    /// This replica's identity (the Pod name).
    pub identity: String,
    /// Seconds a lease is valid without renewal.
    pub duration_seconds: u64,
}

/// Held leadership.
pub struct Leadership {
    receiver: watch::Receiver<bool>,
    task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
    check: LeaseCheck,
}

impl Leadership {
    /// Watches the lease: see [`stop_when_lost`].
    pub fn guard(&self, stop: watch::Sender<bool>, lost: Arc<AtomicBool>) -> JoinHandle<()> {
        let check = self.check.clone();
        tokio::spawn(stop_when_lost(self.receiver.clone(), stop, lost, check))
    }

    /// Gives the lease up (closing the channel makes the manager release it).
    pub async fn release(self) {
        drop(self.receiver);
        match self.task.await {
            Ok(Ok(_)) => tracing::info!("released the leader lease"),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not release the leader lease"),
            Err(e) => tracing::warn!(error = %e, "lease task failed"),
        }
    }
}

/// Waits until this replica holds the lease (or until `stop`). A replica standing by is ready:
/// it is healthy, just not acting.
pub async fn acquire(
    client: Client,
    config: &LeaseConfig,
    mut stop: watch::Receiver<bool>,
    ready: Arc<AtomicBool>,
) -> Result<Leadership, ControllerError> {
    let check = LeaseCheck {
        api: kube::Api::namespaced(client.clone(), &config.namespace),
        config: config.clone(),
    };
    let manager = LeaseManagerBuilder::new(client, &config.name)
        .with_namespace(&config.namespace)
        .with_identity(&config.identity)
        .with_duration(config.duration_seconds)
        .with_grace((config.duration_seconds / 3).max(1))
        .with_field_manager(format!("{}-lease", super::FIELD_MANAGER))
        .build()
        .await
        .map_err(|e| ControllerError::Lease(e.to_string()))?;
    let (mut receiver, task) = manager.watch().await;
    tracing::info!(lease = %config.name, identity = %config.identity, "waiting for the leader lease");
    ready.store(true, Ordering::SeqCst);
    loop {
        if *receiver.borrow_and_update() {
            break;
        }
        tokio::select! {
            changed = receiver.changed() => {
                changed.map_err(|_| ControllerError::Lease("the lease manager stopped".into()))?;
            }
            _ = stop.changed() => {
                if *stop.borrow() {
                    break;
                }
            }
        }
    }
    ready.store(false, Ordering::SeqCst);
    tracing::info!(lease = %config.name, identity = %config.identity, "acquired the leader lease: acting");
    Ok(Leadership {
        receiver,
        task,
        check,
    })
}

/// Stops everything when the lease is lost; returns (dropping its view of the lease) on `stop`.
///
/// Besides the lease manager's own signal, the Lease is read every third of its duration: a lease
/// held by someone else, or one of ours that nobody could confirm for a whole duration (renewals
/// failing: the manager only backs off then), means another replica may act, so this one stops.
async fn stop_when_lost(
    mut receiver: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    lost: Arc<AtomicBool>,
    check: LeaseCheck,
) {
    let mut stopping = stop.subscribe();
    let duration = std::time::Duration::from_secs(check.config.duration_seconds.max(1));
    let mut confirmed = std::time::Instant::now();
    let lose = |why: &str| {
        tracing::error!(reason = why, "lost the leader lease: stopping");
        lost.store(true, Ordering::SeqCst);
        let _ = stop.send(true);
    };
    loop {
        tokio::select! {
            changed = receiver.changed() => {
                if changed.is_err() {
                    return;
                }
                if !*receiver.borrow() {
                    lose("the lease manager lost it");
                    return;
                }
            }
            _ = stopping.changed() => {
                if *stopping.borrow() {
                    return;
                }
            }
            _ = tokio::time::sleep(duration / 3) => {
                match check.api.get(&check.config.name).await {
                    Ok(lease) if held_by(&lease, &check.config.identity, duration) => confirmed = std::time::Instant::now(),
                    Ok(_) => {
                        lose("the Lease is held by another replica or has expired");
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "could not read the leader Lease"),
                }
                if confirmed.elapsed() > duration {
                    lose("the Lease could not be confirmed for a whole lease duration");
                    return;
                }
            }
        }
    }
}

/// How to read the Lease back: the Leases of its namespace, and which Lease.
#[derive(Clone)]
struct LeaseCheck {
    api: kube::Api<k8s_openapi::api::coordination::v1::Lease>,
    config: LeaseConfig,
}

/// Whether `lease` names `identity` as holder and was renewed within `duration`.
fn held_by(
    lease: &k8s_openapi::api::coordination::v1::Lease,
    identity: &str,
    duration: std::time::Duration,
) -> bool {
    let Some(spec) = &lease.spec else {
        return false;
    };
    if spec.holder_identity.as_deref() != Some(identity) {
        return false;
    }
    let Some(renewed) = &spec.renew_time else {
        return true;
    };
    let age = k8s_openapi::jiff::Timestamp::now().duration_since(renewed.0);
    age.as_secs() <= duration.as_secs() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn lease(holder: &str, renewed_seconds_ago: i64) -> Lease {
        let renewed = k8s_openapi::jiff::Timestamp::now()
            - k8s_openapi::jiff::SignedDuration::from_secs(renewed_seconds_ago);
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: Some(MicroTime(renewed)),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_lease_is_ours_only_while_we_hold_it_and_it_is_fresh() {
        let duration = std::time::Duration::from_secs(15);
        assert!(held_by(&lease("a", 3), "a", duration));
        assert!(
            !held_by(&lease("b", 3), "a", duration),
            "someone else holds it"
        );
        assert!(
            !held_by(&lease("a", 60), "a", duration),
            "our renewals stopped"
        );
        assert!(!held_by(&Lease::default(), "a", duration));
    }
}
