//! Shutdown as a small type (after mini-redis): every long-running task holds a [`Shutdown`]
//! and stops at its next safe point once the binary asks it to. A reload stops single tasks
//! (a removed channel's worker, say) through a child shutdown, which also fires with its parent.

use tokio::sync::watch;

/// Held by whoever may stop the daemon (the binary's signal handler, the demo, a test), or one
/// task of it (the daemon's supervisor, on reload).
#[derive(Debug)]
pub struct ShutdownTrigger {
    sender: watch::Sender<bool>,
}

/// Handed to each task; cheap to clone. Fires when any of its triggers does: its own, or an
/// ancestor's.
#[derive(Debug, Clone)]
pub struct Shutdown {
    receivers: Vec<watch::Receiver<bool>>,
}

/// A trigger and the first handle it controls.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (
        ShutdownTrigger { sender },
        Shutdown {
            receivers: vec![receiver],
        },
    )
}

impl ShutdownTrigger {
    /// Asks every task holding a handle to stop.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }
}

impl Shutdown {
    pub(crate) fn is_triggered(&self) -> bool {
        self.receivers.iter().any(|r| *r.borrow())
    }

    /// A handle that fires with this one, or on its own trigger (which stops only its holders).
    pub(crate) fn child(&self) -> (ShutdownTrigger, Shutdown) {
        let (trigger, own) = channel();
        let mut receivers = self.receivers.clone();
        receivers.extend(own.receivers);
        (trigger, Shutdown { receivers })
    }

    /// Completes once shutdown was asked for (at once if it already was). Also completes if a
    /// trigger was dropped, so no task outlives its owner.
    pub(crate) async fn wait(&mut self) {
        let waits = self
            .receivers
            .iter_mut()
            .map(|r| Box::pin(async move { r.wait_for(|&stop| stop).await.map(drop) }));
        let _ = futures_util::future::select_all(waits).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_child_stops_alone_or_with_its_parent() {
        let (parent_trigger, parent) = channel();
        let (child_trigger, mut child) = parent.child();
        let (_other_trigger, other) = parent.child();
        child_trigger.trigger();
        child.wait().await;
        assert!(child.is_triggered());
        assert!(!parent.is_triggered() && !other.is_triggered());
        parent_trigger.trigger();
        let mut other = other;
        other.wait().await;
        assert!(other.is_triggered());
    }
}
