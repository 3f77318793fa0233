//! The binary's commands, one module each. They parse nothing themselves (clap does, in
//! `main.rs`) and hold no machinery (the library does): each reads the configuration, calls the
//! library and prints for a person, through [`say!`] and [`tell!`]: what they print may hold
//! text from the configuration, a server or the store, whose control characters must show
//! rather than act on the admin's terminal.

/// `println!` for a person: control and invisible characters show as escapes
/// (`bbzoom::terminal::shown_lines`).
macro_rules! say {
    () => {
        println!()
    };
    ($($arg:tt)*) => {
        println!("{}", bbzoom::terminal::shown_lines(&format!($($arg)*)))
    };
}

/// `eprintln!` for a person, escaped as [`say!`] is.
macro_rules! tell {
    ($($arg:tt)*) => {
        eprintln!("{}", bbzoom::terminal::shown_lines(&format!($($arg)*)))
    };
}

pub mod check;
pub mod connect;
pub mod dead_letters;
#[cfg(feature = "demo")]
pub mod demo;
pub mod preview;
pub mod run;
pub mod status;
pub mod subscriptions;

/// Exit status for a configuration or credential the admin must fix.
const EXIT_CONFIG: u8 = 2;
/// Exit status when the command needs the daemon and it is not running (as `systemctl status`).
const EXIT_NOT_RUNNING: u8 = 3;
/// Exit status for a damaged store: the admin must move it aside, so the unit does not restart
/// on it (`RestartPreventExitStatus=`).
const EXIT_STORE_DAMAGED: u8 = 4;
/// Exit status of a daemon that stopped because one of its tasks kept failing.
const EXIT_TASK_FAILING: u8 = 5;
/// Exit status of a daemon that stopped because its store kept failing (systemd restarts it:
/// a disk that filled up may have room again).
const EXIT_STORE_FAILING: u8 = 6;

/// The daemon is not running: said plainly, with the socket that nothing answers on.
#[derive(Debug, thiserror::Error)]
#[error("the daemon is not running (nothing answers on {})", .socket.display())]
pub struct NotRunning {
    pub socket: std::path::PathBuf,
}

/// Problems in the admin's files, already reported one per line: the status of a
/// configuration to fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MustFix(pub String);

/// Opens the store for a command while no daemon runs. It refuses a state directory that does
/// not exist (it would create one) or that another user owns, such as the service's dynamic
/// user: sled may add files as whoever opens it, which the service then could not write.
pub fn open_idle_store(config: &bbzoom::config::Config) -> anyhow::Result<bbzoom::store::Store> {
    use anyhow::Context;
    use std::os::unix::fs::MetadataExt;
    let dir = &config.daemon.state_dir;
    let owner = std::fs::metadata(dir)
        .with_context(|| {
            format!(
                "{}: nothing recorded yet ([daemon] state_dir; the daemon creates it)",
                dir.display()
            )
        })?
        .uid();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    anyhow::ensure!(
        owner == me,
        "{} belongs to uid {owner}, not to this user (uid {me}): opening it could leave files \
         the service cannot write; start the daemon and ask it, or run this as its user",
        dir.display()
    );
    // Its errors name the directory.
    Ok(bbzoom::store::Store::open(dir)?)
}

/// The exit status for a failed command.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if let Some(bbzoom::daemon::DaemonError::TaskFailing { .. }) = err.downcast_ref() {
        EXIT_TASK_FAILING
    } else if let Some(bbzoom::daemon::DaemonError::StoreFailing { .. }) = err.downcast_ref() {
        EXIT_STORE_FAILING
    } else if err.downcast_ref::<bbzoom::config::ConfigError>().is_some()
        || err
            .downcast_ref::<bbzoom::credentials::CredentialsError>()
            .is_some()
        || err.downcast_ref::<MustFix>().is_some()
        || err.downcast_ref::<bbzoom::daemon::DaemonError>().is_some()
    {
        EXIT_CONFIG
    } else if err.downcast_ref::<NotRunning>().is_some() {
        EXIT_NOT_RUNNING
    } else if let Some(bbzoom::store::StoreError::Damaged { .. }) = err.downcast_ref() {
        EXIT_STORE_DAMAGED
    } else {
        1
    }
}

/// `rows` as columns two spaces apart, each as wide as its widest cell; no line ends in spaces.
/// Cells are [`shown`](bbzoom::terminal::shown): they hold configuration values, build data and
/// servers' answers.
pub fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let rows: Vec<[String; N]> = rows
        .iter()
        .map(|row| row.each_ref().map(|cell| bbzoom::terminal::shown(cell)))
        .collect();
    let rows = rows.as_slice();
    let mut widths = [0; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Every command with an example, for `bbzoom help`.
pub const EXAMPLES: &str = "\
Examples:
  bbzoom demo                                   watch bbzoom against its built-in simulator (with
                                                the default demo feature)
  bbzoom connect bitbucket --name acme-ci       store a Bitbucket credential (asks, no echo)
  bbzoom connect zoom --name zoom-bot           store the Zoom chatbot's client secret
  bbzoom disconnect bitbucket --name acme-ci    remove a credential
  bbzoom configure https://bitbucket.org/acme/api --channel ci --branch main --event all
  bbzoom unsubscribe https://bitbucket.org/acme/api
  bbzoom subscriptions                          list what is subscribed where
  bbzoom check --online                         validate config and credentials, try them
  bbzoom preview https://bitbucket.org/acme/api print the cards recent builds would make
  bbzoom run                                    run the daemon (systemd does this)
  bbzoom status                                 what the running daemon is doing
  bbzoom reload                                 make the daemon re-read its files
  bbzoom dead-letters retry --all               retry the cards Zoom refused

Every command reads --config (default /etc/bbzoom/config.toml, or $BBZOOM_CONFIG).
`bbzoom help COMMAND` explains one command.";

#[cfg(test)]
mod tests {
    #[test]
    fn tables_align_without_trailing_spaces() {
        let rows = [
            ["A".to_owned(), "long cell".into(), "x".into()],
            ["longer".to_owned(), "b".into(), "".into()],
        ];
        assert_eq!(super::table(&rows), "A       long cell  x\nlonger  b\n");
    }
}
