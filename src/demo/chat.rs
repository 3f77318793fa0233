//! `bbzoom demo --chat`: a simulated person types commands into #ci while Zoom drops the event
//! WebSocket twice (once staying away while commands are posted, once reconnecting at once),
//! someone else tries a command only admins may use, and the demo checks that each command was
//! answered exactly once.
//!
//! Zoom does not replay what it sent while no connection was open, so the commands posted
//! while it was away reach bbzoom only through its catch-up (list-messages); the count of
//! answers per command shows whether any was lost or run twice.
//!
//! The showcase's `acme/api` subscription in #ci also asks for war rooms (`meeting_on`), which
//! the same Server-to-Server app creates: the summary counts them.

use super::Narration;
use bbzoom_sim::{ChannelEventKind, SimMention, SimPerson, Simulator};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// What the showcase's `acme/api` subscription in #ci adds with `--chat`: a war room when a
/// branch fails, kept while it still fails.
pub(crate) const WAR_ROOMS: &str = "meeting_on = [\"failed\", \"still_failing\"]";

/// The channel the person types in: `#ci` of the simulated account.
pub(crate) const CHANNEL: &str = "ci@conference.xmpp.zoom.us";

/// What the person does, at a fraction of the scenario's length.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Posts a command.
    Say(&'static str),
    /// Someone else, who is not one of bbzoom's admins, posts a command.
    Bystander(&'static str),
    /// Posts a command that starts with an @-mention of bbzoom.
    Mention(&'static str),
    /// Zoom becomes unreachable and closes the connection; commands posted now reach bbzoom
    /// only by catching up once Zoom is back.
    ZoomAway,
    /// Zoom is reachable again.
    ZoomBack,
    /// Zoom closes the connection; bbzoom reconnects at once.
    Drop,
}

/// The script: commands live, two disconnects with commands posted across each, a
/// malformed command.
const SCRIPT: &[(f64, Step)] = &[
    (0.04, Step::Say("bbzoom help")),
    (0.10, Step::Say("bbzoom list")),
    (0.20, Step::ZoomAway),
    (0.21, Step::Say("bbzoom status")),
    (0.22, Step::Say("bbzoom what is failing?")),
    (0.26, Step::ZoomBack),
    (0.45, Step::Drop),
    (0.45, Step::Mention("status")),
    (0.46, Step::Say("bbzoom list")),
    (
        0.60,
        Step::Bystander("bbzoom subscribe acme/web events:failed"),
    ),
    (0.80, Step::Say("bbzoom status")),
];

/// The mention's text before the command, as Zoom shows it.
const MENTION: &str = "@bbzoom";

/// How the chat went, in the demo's summary.
#[derive(Debug, Clone, Serialize)]
pub struct ChatSummary {
    /// Commands the person posted.
    pub commands: usize,
    /// Of those, answered exactly once.
    pub answered_once: usize,
    /// Never answered.
    pub lost: usize,
    /// Answered more than once.
    pub repeated: usize,
    /// Connections Zoom closed on bbzoom.
    pub forced_disconnects: usize,
    /// Event WebSocket connections bbzoom opened.
    pub connections: u64,
    /// War rooms (Zoom meetings) bbzoom created for failing branches.
    pub war_rooms: usize,
}

/// The person typing.
fn person() -> SimPerson {
    SimPerson {
        user_id: "demo-dev-id".to_owned(),
        name: "Dana Dev".to_owned(),
        email: "dana@example.com".to_owned(),
    }
}

/// Someone who may not change subscriptions.
fn bystander() -> SimPerson {
    SimPerson {
        user_id: "demo-bystander-id".to_owned(),
        name: "Sam Ops".to_owned(),
        email: "sam@example.com".to_owned(),
    }
}

/// Plays the script against `sim` (in its simulated time, over a scenario of `end` seconds),
/// printing each command and each answer; the ids of the commands posted and the number of
/// forced disconnects.
pub(crate) async fn play(sim: Arc<Simulator>, end: f64, say: Narration) -> (Vec<String>, usize) {
    let (mut posted, mut disconnects) = (Vec::new(), 0);
    let tick = Duration::from_millis(20);
    // People write to bbzoom once it is in the channel: what was said before its first
    // connection ever is history, not commands.
    connected(&sim).await;
    for &(at, step) in SCRIPT {
        while sim.now() < at * end {
            tokio::time::sleep(tick).await;
        }
        let now = sim.now();
        let mut who = person();
        let (text, mentions) = match step {
            Step::Say(text) => (text.to_owned(), Vec::new()),
            Step::Bystander(text) => {
                who = bystander();
                (text.to_owned(), Vec::new())
            }
            Step::Mention(command) => {
                let app = &sim.options().zoom_events;
                let mention = SimMention {
                    user_id: app.user_id.clone(),
                    email: app.user_email.clone(),
                    start: 0,
                    end: MENTION.chars().count(),
                };
                (format!("{MENTION} {command}"), vec![mention])
            }
            Step::ZoomAway => {
                connected(&sim).await;
                sim.set_zoom_outage(true);
                disconnects += usize::from(sim.disconnect_events());
                say.line(format_args!(
                    "[{now:>6.0}s] (Zoom goes away: the event WebSocket closes and cannot reopen)"
                ));
                continue;
            }
            Step::ZoomBack => {
                sim.set_zoom_outage(false);
                say.line(format_args!("[{now:>6.0}s] (Zoom is back)"));
                continue;
            }
            Step::Drop => {
                connected(&sim).await;
                disconnects += usize::from(sim.disconnect_events());
                say.line(format_args!(
                    "[{now:>6.0}s] (Zoom closes the event WebSocket)"
                ));
                continue;
            }
        };
        match sim.post_to_channel(CHANNEL, &who, &text, &mentions, None) {
            Ok(id) => {
                say.line(format_args!("[{now:>6.0}s] #ci {}: {text}", who.name));
                posted.push(id);
            }
            Err(err) => say.line(format_args!("cannot post {text:?}: {err}")),
        }
    }
    (posted, disconnects)
}

/// Waits until bbzoom has the event WebSocket open (it reconnects by itself after any close);
/// gives up after a few real seconds, so a daemon that cannot connect still ends the demo.
async fn connected(sim: &Simulator) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !sim.events_connected() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits (at most `patience`) until every command in `posted` has an answer.
pub(crate) async fn wait_for_answers(sim: &Simulator, posted: &[String], patience: Duration) {
    let deadline = tokio::time::Instant::now() + patience;
    while posted.iter().any(|id| answers(sim, id) == 0) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The count of answers per command.
pub(crate) fn summarize(
    sim: &Simulator,
    posted: &[String],
    forced_disconnects: usize,
) -> ChatSummary {
    let counts: Vec<usize> = posted.iter().map(|id| answers(sim, id)).collect();
    ChatSummary {
        commands: posted.len(),
        answered_once: counts.iter().filter(|&&n| n == 1).count(),
        lost: counts.iter().filter(|&&n| n == 0).count(),
        repeated: counts.iter().filter(|&&n| n > 1).count(),
        forced_disconnects,
        connections: sim.stats().zoom_events_connections,
        war_rooms: sim.meetings().len(),
    }
}

/// The replies in the thread of `command`.
fn answers(sim: &Simulator, command: &str) -> usize {
    sim.channel(CHANNEL)
        .iter()
        .filter(|m| m.reply_to.as_deref() == Some(command))
        .count()
}

/// Prints the head of each answer to a person as it is posted.
pub(crate) async fn print_answers(sim: Arc<Simulator>, say: Narration) {
    let mut events = sim.subscribe();
    while let Ok(event) = events.recv().await {
        if !matches!(event.kind, ChannelEventKind::Posted) || event.to_jid != CHANNEL {
            continue;
        }
        let Some(command) = sim.message(&event.message_id).and_then(|m| m.reply_to) else {
            continue;
        };
        // A reply to a person's post (the bot's own cards get replies too: final results).
        if sim.message(&command).is_none() {
            let head = event.content.pointer("/head/text").and_then(|t| t.as_str());
            say.line(format_args!(
                "[{:>6.0}s] #ci bbzoom (in the thread): {}",
                event.at,
                head.unwrap_or("(an answer)")
            ));
        }
    }
}
