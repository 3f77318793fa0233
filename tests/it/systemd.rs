//! The systemd unit in `systemd/bbzoom.service`: hardened enough (`systemd-analyze security`
//! scores it 1.5 or less), valid for `systemd-analyze verify`, and wired to what the daemon does
//! (`Type=notify`, a watchdog, reload over the control socket, the identity as a credential).
//!
//! These tests need `systemd-analyze` (Debian: `apt-get install systemd`); `.ci/run` installs it.
//! They fail rather than skip without it, so CI can never pass without having scored the unit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The most exposure the unit may have, on systemd-analyze's scale of 0 (locked down) to 10.
const MAX_EXPOSURE: f64 = 1.5;

fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/bbzoom.service")
}

fn unit_text() -> String {
    let path = unit_path();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `systemd-analyze ARGS`, or a failure that says how to get it.
fn systemd_analyze(args: &[&std::ffi::OsStr]) -> Output {
    match Command::new("systemd-analyze").args(args).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "systemd-analyze is not installed; .ci/run installs it \
             (apt-get install --no-install-recommends systemd)"
        ),
        Err(e) => panic!("cannot run systemd-analyze: {e}"),
    }
}

/// The unit's assignments `KEY=value` in every section, in order (a key may repeat), without
/// comments, blank lines and section headers.
fn assignments(unit: &str) -> Vec<(&str, &str)> {
    unit.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with(['#', ';', '[']))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim(), value.trim()))
        .collect()
}

fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    assignments(unit)
        .into_iter()
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .collect()
}

/// A time span as systemd writes the ones in this unit ("60s", "2min", "90"), in seconds.
fn seconds(span: &str) -> u64 {
    let digits: String = span.chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = digits
        .parse()
        .unwrap_or_else(|_| panic!("time span {span:?}"));
    match &span[digits.len()..] {
        "" | "s" | "sec" => n,
        "m" | "min" => n * 60,
        unit => panic!("time span {span:?}: unit {unit:?} not handled here"),
    }
}

#[test]
fn security_exposure_is_at_most_one_and_a_half() {
    let path = unit_path();
    let output = systemd_analyze(&["security".as_ref(), "--offline=yes".as_ref(), path.as_ref()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "systemd-analyze security failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // "→ Overall exposure level for bbzoom.service: 1.1 OK 🙂"
    let exposure: f64 = stdout
        .lines()
        .find_map(|line| {
            line.split_once("Overall exposure level for ")?
                .1
                .split_once(": ")
        })
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{stdout}\n{stderr}"));
    println!("systemd-analyze security --offline=yes: overall exposure {exposure}");
    assert!(
        exposure <= MAX_EXPOSURE,
        "overall exposure {exposure} is above {MAX_EXPOSURE}; the ✗ lines say what is open:\n\
         {stdout}"
    );
}

/// `systemd-analyze verify` loads the unit as systemd would: unknown keys, bad values and
/// missing executables are reported. The binary is not installed here, so a copy of the unit
/// points at the one cargo built; any complaint on stderr fails (verify exits 0 on warnings).
#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("bbzoom.service");
    let text = unit_text().replace("/usr/local/bin/bbzoom", env!("CARGO_BIN_EXE_bbzoom"));
    std::fs::write(&copy, text).unwrap();
    let output = systemd_analyze(&["verify".as_ref(), "--man=no".as_ref(), copy.as_ref()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify ({}):\n{stderr}",
        output.status
    );
}

#[test]
fn the_unit_matches_what_the_daemon_does() {
    let unit = unit_text();
    let one = |key: &str| -> &str {
        match values(&unit, key)[..] {
            [value] => value,
            ref found => panic!("{key}= should be set once, found {found:?}"),
        }
    };

    // The daemon sends READY=1, STATUS=, STOPPING=1 and WATCHDOG=1 itself.
    assert_eq!(one("Type"), "notify");
    assert_eq!(one("NotifyAccess"), "main");
    assert!(seconds(one("WatchdogSec")) >= 10, "watchdog too tight");
    // What a restart cannot fix: a file to correct (2), a damaged store to move aside (4).
    let mut kept_down: Vec<&str> = one("RestartPreventExitStatus").split_whitespace().collect();
    kept_down.sort_unstable();
    assert_eq!(kept_down, ["2", "4"]);

    let config = "--config /etc/bbzoom/config.toml";
    assert_eq!(
        one("ExecStart"),
        format!("/usr/local/bin/bbzoom run {config}")
    );
    assert_eq!(
        one("ExecReload"),
        format!("/usr/local/bin/bbzoom reload {config}")
    );
    // In-flight deliveries finish after SIGTERM: each request may take the default 20 s
    // request timeout, and a delivery may need a token first.
    assert!(
        seconds(one("TimeoutStopSec")) >= 40,
        "TimeoutStopSec too short"
    );

    // The identity reaches the dynamic user as a credential, shown where config.toml names it.
    assert_eq!(one("LoadCredential"), "identity:/etc/bbzoom/identity.txt");
    assert_eq!(
        one("BindReadOnlyPaths"),
        "%d/identity:/etc/bbzoom/identity.txt"
    );
    assert_eq!(one("StateDirectory"), "bbzoom");
    assert_eq!(one("StateDirectoryMode"), "0700");
    assert_eq!(one("ConfigurationDirectory"), "bbzoom");

    // Outbound only: IP sockets to connect, never to listen.
    let mut families: Vec<&str> = one("RestrictAddressFamilies").split_whitespace().collect();
    families.sort_unstable();
    assert_eq!(families, ["AF_INET", "AF_INET6", "AF_UNIX"]);
    assert_eq!(one("SocketBindDeny"), "any");
}
