//! The state directory as the real `bbzoom run` leaves it and finds it: a damaged store stops
//! the daemon with its own exit status and says how to recover, a store that keeps failing
//! (its file cannot grow, as on a full disk) stops it with another, and the directory and
//! sled's files are its user's only whatever the umask.

use crate::common::{Harness, log_text, sigterm};
use bbzoom::demo::{SHOWCASE_SUBSCRIPTIONS, SimPolling};
use bbzoom_sim::Scenario;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The exit status README documents for a damaged store.
const EXIT_STORE_DAMAGED: i32 = 4;
/// The exit status README documents for a store that keeps failing.
const EXIT_STORE_FAILING: i32 = 6;

/// How long a refused start may take at most; a daemon still running after it accepted the
/// store.
const START_LIMIT: Duration = Duration::from_secs(30);

/// `bbzoom run` on the harness's configuration with the given umask, its log in `log`.
fn spawn_run(harness: &Harness, umask: libc::mode_t, log: &Path) -> std::process::Child {
    let log = std::fs::File::create(log).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_bbzoom"));
    command
        .args(["run", "--config"])
        .arg(harness.config_path())
        .env("RUST_LOG", "bbzoom=info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    // SAFETY: umask is async-signal-safe and cannot fail.
    unsafe {
        command.pre_exec(move || {
            libc::umask(umask);
            Ok(())
        });
    }
    command.spawn().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_damaged_in_the_middle_stops_run_with_its_own_status_and_says_how_to_recover() {
    let harness = Harness::start(
        Scenario::showcase(),
        40.0,
        SimPolling::every(10.0),
        SHOWCASE_SUBSCRIPTIONS,
    )
    .await;
    let daemon = harness.run_daemon();
    // Some builds in: cursors, states and cards recorded.
    harness.sleep_until(300.0).await;
    daemon.stop().await;

    // A block of zeros in the middle of what sled wrote, after a clean close.
    let state = &harness.config.daemon.state_dir;
    let db = state.join("db");
    let mut bytes = std::fs::read(&db).unwrap();
    let used = bytes.iter().rposition(|&b| b != 0).unwrap();
    bytes[used / 2..used / 2 + 512].fill(0);
    std::fs::write(&db, &bytes).unwrap();

    let log = harness.dir.path().join("run.log");
    let mut child = spawn_run(&harness, 0o022, &log);
    let deadline = Instant::now() + START_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("bbzoom ran on a damaged store; log:\n{}", log_text(&log));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let said = log_text(&log);
    assert_eq!(status.code(), Some(EXIT_STORE_DAMAGED), "{said}");
    assert_eq!(said.matches("is damaged").count(), 1, "said once:\n{said}");
    assert!(
        said.contains(&format!(
            "mv {} {}.damaged",
            state.display(),
            state.display()
        )) && said.contains("baselined again")
            && !said.contains("another bbzoom"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_state_directory_and_its_files_are_private_whatever_the_umask() {
    let harness = Harness::showcase().await;
    let state = &harness.config.daemon.state_dir;
    assert!(!state.exists());
    let log = harness.dir.path().join("run.log");
    let child = spawn_run(&harness, 0o000, &log);
    let deadline = Instant::now() + START_LIMIT;
    while !log_text(&log).contains("bbzoom running") {
        assert!(
            Instant::now() < deadline,
            "not started:\n{}",
            log_text(&log)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sigterm(child, &log).await;

    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(state), 0o700, "{}", state.display());
    let mut files = 0;
    for entry in std::fs::read_dir(state).unwrap() {
        let path = entry.unwrap().path();
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), expected, "{}", path.display());
        files += 1;
    }
    assert!(files >= 2, "sled's files are there");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_that_keeps_failing_stops_run_with_its_own_status() {
    let harness = Harness::start(
        Scenario::showcase(),
        100.0,
        SimPolling::every(10.0),
        SHOWCASE_SUBSCRIPTIONS,
    )
    .await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_bbzoom"));
    command
        .args(["run", "--config"])
        .arg(harness.config_path())
        .env("RUST_LOG", "bbzoom=info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // A pipe, which no file-size limit applies to.
        .stderr(Stdio::piped());
    // SAFETY: setrlimit and signal are async-signal-safe. A file-size limit with SIGXFSZ
    // ignored: sled's file cannot grow past 8 KiB, and writes beyond fail (EFBIG), as they
    // would on a full disk.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 8 * 1024,
                rlim_max: 8 * 1024,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let said = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
        text
    });
    let deadline = Instant::now() + START_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "bbzoom kept running on a store that fails; log:\n{}",
                said.join().unwrap()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let said = said.join().unwrap();
    assert_eq!(status.code(), Some(EXIT_STORE_FAILING), "{said}");
    assert!(said.contains("bbzoom running"), "it started first:\n{said}");
    assert!(
        said.contains("the store kept failing") && said.contains("File too large"),
        "{said}"
    );
}
