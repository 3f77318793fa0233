//! Shutdown as a small type (after mini-redis): every long-running task holds a [`Shutdown`]
//! and stops at its next safe point once the binary asks it to.

use tokio::sync::watch;

/// Held by whoever may stop the daemon (the binary's signal handler, the demo, a test).
#[derive(Debug)]
pub struct ShutdownTrigger {
    sender: watch::Sender<bool>,
}

/// Handed to each task; cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
}

/// A trigger and the first handle it controls.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (ShutdownTrigger { sender }, Shutdown { receiver })
}

impl ShutdownTrigger {
    /// Asks every task holding a handle to stop.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }
}

impl Shutdown {
    pub fn is_triggered(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Completes once shutdown was asked for (at once if it already was). Also completes if the
    /// trigger was dropped, so no task outlives its owner.
    pub async fn wait(&mut self) {
        let _ = self.receiver.wait_for(|&stop| stop).await;
    }
}
