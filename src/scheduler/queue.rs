//! The queue of polls to come: two lines, soonest first in each. What is known to be coming
//! (a push the scan saw, a running build's end) goes before the sweep of idle repositories
//! when both are overdue, so a busy hour spends the budget on what surely changed; but the
//! sweep keeps a floor share of the polls started, so no idle repository waits for ever.

use super::tracked::Decaying;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;
use tokio::time::Instant;

/// Share of the polls started that go to the sweep whenever sweeps are overdue, however many
/// pushes and ends wait: it finds the builds no scan sees (scheduled, by hand, late statuses).
const SWEEP_FLOOR: f64 = 0.15;

/// A line of polls by when they are due: indices into the scheduler's watches.
type Line = BinaryHeap<Reverse<(Instant, usize)>>;

/// Which line a poll waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Looking for something known to come: a pushed repository, a running build. With the
    /// scan off, every poll (one line: the plan's order alone).
    Expected,
    /// Sweeping an idle repository for what the scan cannot see.
    Sweep,
}

/// The polls to come.
#[derive(Default)]
pub(crate) struct PollQueue {
    expected: Line,
    sweeps: Line,
    /// Polls started lately, and the sweeps among them (halving every `memory` the caller
    /// gives), so the sweep's floor share is kept over a moving window.
    started: Option<(Decaying, Decaying)>,
}

impl PollQueue {
    pub(crate) fn push(&mut self, at: Instant, index: usize, kind: Kind) {
        match kind {
            Kind::Expected => self.expected.push(Reverse((at, index))),
            Kind::Sweep => self.sweeps.push(Reverse((at, index))),
        }
    }

    /// The poll to start next, its line, and when it is due: the sooner of the two heads,
    /// except that when both are overdue at `now` the expected one goes first unless the
    /// sweep is below its floor share.
    pub(crate) fn head(&self, now: Instant, memory: Duration) -> Option<(Instant, usize, Kind)> {
        let head = |line: &Line, kind| line.peek().map(|Reverse((at, i))| (*at, *i, kind));
        match (
            head(&self.expected, Kind::Expected),
            head(&self.sweeps, Kind::Sweep),
        ) {
            (Some(expected), Some(sweep)) if expected.0 <= now && sweep.0 <= now => {
                Some(if self.sweep_owed(now, memory) {
                    sweep
                } else {
                    expected
                })
            }
            (Some(expected), Some(sweep)) => Some(if sweep.0 < expected.0 {
                sweep
            } else {
                expected
            }),
            (one, other) => one.or(other),
        }
    }

    /// Takes the head of `kind`'s line (as [`PollQueue::head`] named it), counting it started.
    pub(crate) fn pop(&mut self, kind: Kind, now: Instant, memory: Duration) {
        let (started, swept) = self
            .started
            .get_or_insert_with(|| (Decaying::new(now), Decaying::new(now)));
        started.add(1.0, now, memory);
        match kind {
            Kind::Expected => {
                self.expected.pop();
            }
            Kind::Sweep => {
                swept.add(1.0, now, memory);
                self.sweeps.pop();
            }
        }
    }

    fn sweep_owed(&self, now: Instant, memory: Duration) -> bool {
        self.started.is_some_and(|(started, swept)| {
            swept.at(now, memory) < SWEEP_FLOOR * started.at(now, memory)
        })
    }

    /// Every queued poll, leaving the queue empty (the counts of polls started stay).
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = (Instant, usize)> + use<> {
        let expected = std::mem::take(&mut self.expected);
        let sweeps = std::mem::take(&mut self.sweeps);
        expected
            .into_iter()
            .chain(sweeps)
            .map(|Reverse((at, index))| (at, index))
    }

    /// Queues every poll again where and when `place` says.
    pub(crate) fn requeue(&mut self, place: impl Fn(Instant, usize) -> (Instant, Kind)) {
        let queued: Vec<(Instant, usize)> = self.drain().collect();
        for (at, index) in queued {
            let (at, kind) = place(at, index);
            self.push(at, index, kind);
        }
    }

    /// A due time ahead of every queued poll and no later than `now`.
    pub(crate) fn front(&self, now: Instant) -> Instant {
        [&self.expected, &self.sweeps]
            .into_iter()
            .filter_map(|line| line.peek().map(|Reverse((at, _))| *at))
            .fold(now, Instant::min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overdue_expected_polls_go_first_but_the_sweep_keeps_its_floor() {
        let (now, memory) = (Instant::now(), Duration::from_secs(600));
        let mut queue = PollQueue::default();
        let early = now - Duration::from_secs(100);
        for index in 0..100 {
            queue.push(early, index, Kind::Sweep);
            queue.push(now, 1000 + index, Kind::Expected);
        }
        let mut sweeps = 0;
        for _ in 0..100 {
            let (_, _, kind) = queue.head(now, memory).expect("queued");
            sweeps += usize::from(kind == Kind::Sweep);
            queue.pop(kind, now, memory);
        }
        // Overdue sweeps queued long before still take only their floor share.
        assert!((14..=16).contains(&sweeps), "{sweeps} sweeps of 100");
    }

    #[test]
    fn the_sooner_head_goes_first_when_not_both_are_overdue() {
        let (now, memory) = (Instant::now(), Duration::from_secs(600));
        let mut queue = PollQueue::default();
        queue.push(now + Duration::from_secs(10), 1, Kind::Expected);
        queue.push(now - Duration::from_secs(5), 2, Kind::Sweep);
        assert_eq!(queue.head(now, memory).map(|h| h.1), Some(2));
        queue.pop(Kind::Sweep, now, memory);
        assert_eq!(queue.head(now, memory).map(|h| h.1), Some(1));
        assert_eq!(queue.front(now), now);
        queue.requeue(|at, _| (at - Duration::from_secs(20), Kind::Sweep));
        assert_eq!(queue.front(now), now - Duration::from_secs(10));
        assert_eq!(queue.drain().count(), 1);
        assert!(queue.head(now, memory).is_none());
    }
}
