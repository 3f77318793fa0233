//! Transition detection and event classification: pure functions of (what we knew, what we see).
//!
//! Architecture invariant: nothing here does IO, reads a clock or fails. Everything is tested
//! as tables of (before, after) -> expected event.

use crate::domain::{BuildState, EventKind, Health, Outcome};

/// What one observation of a build means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The state differs from the stored one and must be recorded.
    pub(crate) changed: bool,
    /// What to tell, if anything.
    pub event: Option<EventKind>,
    /// The branch's health after this build, when the build settles it.
    pub(crate) health: Option<Health>,
}

const UNCHANGED: Verdict = Verdict {
    changed: false,
    event: None,
    health: None,
};

/// Classifies the observation `now` of a build last stored as `before` (`None`: never seen),
/// on a branch whose health was `health`.
pub fn classify(before: Option<&BuildState>, now: &BuildState, health: Option<Health>) -> Verdict {
    if before == Some(now) {
        return UNCHANGED;
    }
    let was_running = before.is_some_and(|b| !b.is_finished());
    let (event, health) = match now {
        BuildState::Paused => (Some(EventKind::Paused), None),
        // A new build, or a finished one run again, has started; moving between in-progress
        // stages (pending -> running, paused -> running) is not news.
        BuildState::Pending | BuildState::Running | BuildState::InProgressOther(_) => {
            ((!was_running).then_some(EventKind::Started), None)
        }
        BuildState::Completed(Outcome::Successful) => {
            let event = if health == Some(Health::Failing) {
                EventKind::Fixed
            } else {
                EventKind::Succeeded
            };
            (Some(event), Some(Health::Passing))
        }
        BuildState::Completed(Outcome::Failed | Outcome::Error) => {
            let event = if health == Some(Health::Failing) {
                EventKind::StillFailing
            } else {
                EventKind::Failed
            };
            (Some(event), Some(Health::Failing))
        }
        // A stopped or expired build says nothing about the code; neither does a result we
        // do not know, which is still announced (as an ending) rather than swallowed.
        BuildState::Completed(Outcome::Stopped | Outcome::Expired | Outcome::Other(_)) => {
            (Some(EventKind::Stopped), None)
        }
    };
    Verdict {
        changed: true,
        event,
        health,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BuildState::*;
    use EventKind::{Failed, Fixed, Started, StillFailing, Stopped, Succeeded};
    use Health::*;

    fn done(o: Outcome) -> BuildState {
        Completed(o)
    }

    #[test]
    fn classification_table() {
        let other = || InProgressOther("HALTED".into());
        #[rustfmt::skip]
        // (before, now, health before, expected event, expected health after)
        type Row = (Option<BuildState>, BuildState, Option<Health>, Option<EventKind>, Option<Health>);
        let table: Vec<Row> = vec![
            // before,              now,                          health,        event,              health after
            (None, Pending, None, Some(Started), None),
            (None, Running, Some(Failing), Some(Started), None),
            (None, other(), None, Some(Started), None),
            (Some(Pending), Running, None, None, None),
            (Some(Running), Paused, None, Some(EventKind::Paused), None),
            (Some(Paused), Running, None, None, None),
            (
                Some(Running),
                done(Outcome::Successful),
                None,
                Some(Succeeded),
                Some(Passing),
            ),
            (
                Some(Running),
                done(Outcome::Successful),
                Some(Passing),
                Some(Succeeded),
                Some(Passing),
            ),
            (
                Some(Running),
                done(Outcome::Successful),
                Some(Failing),
                Some(Fixed),
                Some(Passing),
            ),
            (
                Some(Running),
                done(Outcome::Failed),
                Some(Passing),
                Some(Failed),
                Some(Failing),
            ),
            (
                Some(Running),
                done(Outcome::Error),
                None,
                Some(Failed),
                Some(Failing),
            ),
            (
                Some(Running),
                done(Outcome::Failed),
                Some(Failing),
                Some(StillFailing),
                Some(Failing),
            ),
            (
                Some(Paused),
                done(Outcome::Stopped),
                Some(Failing),
                Some(Stopped),
                None,
            ),
            (
                Some(Paused),
                done(Outcome::Expired),
                None,
                Some(Stopped),
                None,
            ),
            (
                Some(Running),
                done(Outcome::Other("X".into())),
                None,
                Some(Stopped),
                None,
            ),
            // A build first seen finished (it ran between two polls) is still announced.
            (
                None,
                done(Outcome::Failed),
                None,
                Some(Failed),
                Some(Failing),
            ),
            // A finished build run again starts again.
            (
                Some(done(Outcome::Failed)),
                Running,
                Some(Failing),
                Some(Started),
                None,
            ),
        ];
        for (before, now, health, event, health_after) in table {
            let verdict = classify(before.as_ref(), &now, health);
            assert!(verdict.changed, "{before:?} -> {now:?}");
            assert_eq!(
                (verdict.event, verdict.health),
                (event, health_after),
                "{before:?} -> {now:?} with {health:?}"
            );
        }
    }

    #[test]
    fn the_same_state_twice_is_no_transition() {
        for state in [
            Pending,
            Running,
            Paused,
            done(Outcome::Failed),
            InProgressOther("HALTED".into()),
        ] {
            assert_eq!(classify(Some(&state), &state, Some(Failing)), UNCHANGED);
        }
    }
}
