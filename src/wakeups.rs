//! The signal between the two halves of the data path: a poller that committed outbox rows for
//! a channel wakes that channel's delivery worker, which otherwise sleeps until its next retry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// One wake-up signal per channel. Channels come and go with reloads, so a signal is made the
/// first time either side asks.
#[derive(Debug, Default)]
pub struct Wakeups {
    by_channel: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Wakeups {
    /// Wakes `channel`'s worker; a wake-up sent while it is busy (or not started yet) is kept
    /// for its next wait.
    pub(crate) fn wake(&self, channel: &str) {
        self.signal(channel).notify_one();
    }

    /// The signal `channel`'s worker waits on.
    pub(crate) fn signal(&self, channel: &str) -> Arc<Notify> {
        self.by_channel
            .lock()
            .expect("wakeups lock")
            .entry(channel.to_owned())
            .or_default()
            .clone()
    }
}
