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
}

impl Leadership {
    /// Leadership changes.
    pub fn receiver(&self) -> watch::Receiver<bool> {
        self.receiver.clone()
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
    tracing::info!(lease = %config.name, "acquired the leader lease");
    Ok(Leadership { receiver, task })
}

/// Stops everything when the lease is lost; returns (dropping its view of the lease) on `stop`.
pub async fn stop_when_lost(
    mut receiver: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    lost: Arc<AtomicBool>,
) {
    let mut stopping = stop.subscribe();
    loop {
        tokio::select! {
            changed = receiver.changed() => {
                if changed.is_err() {
                    return;
                }
                if !*receiver.borrow() {
                    tracing::error!("lost the leader lease: stopping");
                    lost.store(true, Ordering::SeqCst);
                    let _ = stop.send(true);
                    return;
                }
            }
            _ = stopping.changed() => {
                if *stopping.borrow() {
                    return;
                }
            }
        }
    }
}
