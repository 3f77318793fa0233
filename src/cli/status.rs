//! `bbzoom status` and `bbzoom reload`: questions to the running daemon over its control
//! socket. Without a daemon, `status` says so plainly and shows what the store recorded.

use super::{MustFix, NotRunning};
use bbzoom::config::Config;
use bbzoom::control::{self, Answer, ControlError, ReloadSummary, Request, StatusReport};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct StatusArgs {
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Asks the daemon of the configuration at `config_path` (even if the file is broken now: the
/// daemon runs on its last good one); `Ok(None)` if it is not running.
pub async fn ask(config_path: &Path, request: &Request) -> anyhow::Result<Option<Answer>> {
    let socket = Config::control_socket(config_path)?;
    match control::ask(&socket, request).await {
        Ok(Ok(answer)) => Ok(Some(answer)),
        Ok(Err(refusal)) => Err(anyhow::anyhow!(refusal)),
        Err(ControlError::NotRunning { .. }) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

pub async fn status(config_path: PathBuf, args: StatusArgs) -> anyhow::Result<()> {
    let report = match ask(&config_path, &Request::Status).await? {
        Some(Answer::Status(report)) => *report,
        Some(other) => anyhow::bail!("unexpected answer to status: {other:?}"),
        None => {
            let config = Config::load(&config_path)?;
            // Only the store is left to read; it may be missing, locked or not ours.
            match super::open_idle_store(&config) {
                Ok(store) => StatusReport::from_store(&config, &store, |_| None),
                Err(err) => {
                    tell!("what the store recorded cannot be shown: {err:#}");
                    return Err(not_running(&config_path)?.into());
                }
            }
        }
    };
    if args.json {
        // JSON escapes control characters itself; a terminal escape in it would not be JSON.
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let described = describe(&report, bbzoom::clock::now_ms());
        print!("{}", bbzoom::terminal::shown_lines(&described));
    }
    if report.running {
        Ok(())
    } else {
        Err(not_running(&config_path)?.into())
    }
}

fn not_running(config_path: &Path) -> anyhow::Result<NotRunning> {
    Ok(NotRunning {
        socket: Config::control_socket(config_path)?,
    })
}

/// The report as an admin reads it, relative to `now_ms`.
fn describe(report: &StatusReport, now_ms: i64) -> String {
    use std::fmt::Write;
    let ago = |at: i64| format_ago(now_ms - at);
    let mut out = String::new();
    match report.started_ms {
        Some(started) if report.running => writeln!(
            out,
            "bbzoom is running (started {}, configuration {})",
            ago(started),
            report.config.display()
        ),
        _ => writeln!(
            out,
            "bbzoom is NOT running; what the store recorded ({}):",
            report.config.display()
        ),
    }
    .unwrap();
    if let Some(reload) = &report.last_reload {
        let outcome = match &reload.outcome {
            Ok(summary) => format!("ok; {}", summarize(summary)),
            Err(err) => format!("REFUSED, the previous configuration kept running: {err}"),
        };
        writeln!(out, "last reload {}: {outcome}", ago(reload.at_ms)).unwrap();
    }
    if let Some(f) = &report.finding {
        let failed = match f.scan_errors {
            0 => String::new(),
            n => format!(", {n} failed"),
        };
        writeln!(
            out,
            "new builds found: {} by a workspace scan, {} by a schedule, {} by the sweep of idle repositories, {} while following a run ({} scans{failed}, {} pushes seen)",
            f.by_scan, f.by_schedule, f.by_sweep, f.following, f.scans, f.hints
        )
        .unwrap();
    }
    for task in &report.task_restarts {
        writeln!(
            out,
            "RESTARTED: {} ended unexpectedly {} time(s), last {}: {}",
            task.task,
            task.restarts,
            ago(task.last_at_ms),
            bbzoom::terminal::shown(&task.last_cause)
        )
        .unwrap();
    }
    for events in &report.events {
        let connected = match events.connected_since_ms {
            Some(at) => format!("connected since {}", ago(at)),
            None => "disconnected".to_owned(),
        };
        writeln!(
            out,
            "chat commands (subscription {}): {connected}; last event {}; {} reconnect(s){}",
            bbzoom::terminal::shown(&events.subscription_id),
            events.last_event_ms.map_or("never".to_owned(), ago),
            events.reconnects,
            events
                .last_error
                .as_ref()
                .map_or(String::new(), |e| format!(
                    "; last failure: {}",
                    bbzoom::terminal::shown(e)
                )),
        )
        .unwrap();
    }
    let mut rows = vec![[
        "REPOSITORY".to_owned(),
        "SOURCE".into(),
        "LAST POLL".into(),
        "OUTCOME".into(),
        "LAST STATE".into(),
        "LANES".into(),
    ]];
    for s in &report.subscriptions {
        let lanes: Vec<String> = s.lanes.iter().map(|(l, h)| format!("{l} {h}")).collect();
        let mut state = s.last_state.as_ref().map_or("-".to_owned(), |(state, at)| {
            format!("{state} {}", ago(*at))
        });
        if s.unfinished > 0 {
            state.push_str(&format!(" ({} running)", s.unfinished));
        }
        rows.push([
            s.repository.clone(),
            s.source.clone(),
            s.last_poll_ms.map_or("-".into(), ago),
            s.last_outcome.clone().unwrap_or_else(|| "-".into()),
            state,
            if lanes.is_empty() {
                "-".into()
            } else {
                lanes.join(", ")
            },
        ]);
    }
    out.push('\n');
    out.push_str(&super::table(&rows));
    if report.running {
        let mut rows = vec![[
            "CREDENTIAL".to_owned(),
            "REQUESTS IN WINDOW".into(),
            "BUDGET".into(),
            "FROM".into(),
            "PAUSED".into(),
            "PROBLEM".into(),
        ]];
        for c in &report.credentials {
            rows.push([
                c.name.clone(),
                c.requests_in_window.to_string(),
                c.budget.clone(),
                if c.budget_source.is_empty() {
                    "-".into()
                } else {
                    c.budget_source.clone()
                },
                c.paused_for_secs
                    .map_or("-".into(), |s| format!("{s}s more")),
                c.broken.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        out.push('\n');
        out.push_str(&super::table(&rows));
    }
    let mut rows = vec![["CHANNEL".to_owned(), "CARDS WAITING".into()]];
    rows.extend(report.channels.iter().map(|c| {
        let name = if c.configured {
            c.name.clone()
        } else {
            format!("{} (no longer configured; kept until it is again)", c.name)
        };
        [name, c.outbox.to_string()]
    }));
    out.push('\n');
    out.push_str(&super::table(&rows));
    if !report.mutes.is_empty() {
        let mut rows = vec![[
            "MUTED CHANNEL".to_owned(),
            "WHAT".into(),
            "UNTIL".into(),
            "BY".into(),
            "CARDS HELD".into(),
        ]];
        rows.extend(report.mutes.iter().map(|m| {
            let until = if m.until_ms > now_ms {
                format!(
                    "in {}",
                    format_ago(m.until_ms - now_ms).trim_end_matches(" ago")
                )
            } else {
                "ended; its summary card is being sent".to_owned()
            };
            [
                m.channel.clone(),
                m.scope.clone(),
                until,
                m.by.clone(),
                m.held.to_string(),
            ]
        }));
        out.push('\n');
        out.push_str(&super::table(&rows));
    }
    writeln!(
        out,
        "\ndead letters: {}{}",
        report.dead_letters,
        if report.dead_letters > 0 {
            " (bbzoom dead-letters list)"
        } else {
            ""
        }
    )
    .unwrap();
    out
}

/// "12s ago", "5m ago", "3h ago", "2d ago".
pub(super) fn format_ago(ms: i64) -> String {
    let secs = (ms / 1000).max(0);
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86_400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

fn summarize(summary: &ReloadSummary) -> String {
    let mut parts = Vec::new();
    let list = |what: &str, items: &[String]| format!("{what} {}", items.join(", "));
    if !summary.added.is_empty() {
        parts.push(list("added", &summary.added));
    }
    if !summary.removed.is_empty() {
        parts.push(list("removed", &summary.removed));
    }
    if !summary.restarted_credentials.is_empty() {
        parts.push(list("new credential for", &summary.restarted_credentials));
    }
    if !summary.restarted_channels.is_empty() {
        parts.push(list(
            "channel settings changed for",
            &summary.restarted_channels,
        ));
    }
    if !summary.needs_restart.is_empty() {
        parts.push(list(
            "takes effect at the next restart:",
            &summary.needs_restart,
        ));
    }
    if parts.is_empty() {
        "nothing changed".into()
    } else {
        parts.join("; ")
    }
}

/// Asks the daemon to reload: what changed, `None` if it is not running. A refusal is a file
/// the admin must fix (exit status 2); the daemon keeps its previous configuration.
async fn ask_reload(config_path: &Path) -> anyhow::Result<Option<ReloadSummary>> {
    let socket = Config::control_socket(config_path)?;
    match control::ask(&socket, &Request::Reload).await {
        Ok(Ok(Answer::Reloaded(summary))) => Ok(Some(summary)),
        Ok(Ok(other)) => anyhow::bail!("unexpected answer to reload: {other:?}"),
        Ok(Err(refusal)) => Err(MustFix(format!(
            "the running daemon refused the new files and keeps its previous configuration: \
             {refusal}"
        ))
        .into()),
        Err(ControlError::NotRunning { .. }) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

pub async fn reload(config_path: PathBuf) -> anyhow::Result<()> {
    match ask_reload(&config_path).await? {
        Some(summary) => {
            say!("reloaded: {}", summarize(&summary));
            Ok(())
        }
        None => Err(not_running(&config_path)?.into()),
    }
}

/// After `configure`, `unsubscribe`, `connect` or `disconnect` changed a file: makes a running
/// daemon reload and reports what it said; if the daemon is not running, says it will read the
/// files when it starts. Fails if the daemon refused the new files (it keeps the old ones).
pub async fn reload_if_running(config_path: &Path) -> anyhow::Result<()> {
    match ask_reload(config_path).await? {
        Some(summary) => say!("the running daemon reloaded: {}", summarize(&summary)),
        None => say!("bbzoom is not running; it reads the new configuration when it starts"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        assert_eq!(format_ago(12_400), "12s ago");
        assert_eq!(format_ago(-5), "0s ago");
        assert_eq!(format_ago(125_000), "2m ago");
        assert_eq!(format_ago(3 * 3_600_000), "3h ago");
        assert_eq!(format_ago(50 * 3_600_000), "2d ago");
    }
}
