//! Telling systemd how the daemon is doing (`sd_notify(3)`), without libsystemd: one datagram
//! of `KEY=value` lines to the socket named by `NOTIFY_SOCKET`.
//!
//! The unit is `Type=notify`, so systemd counts the service as started only after
//! [`Notifier::ready`], shows the last [`Notifier::status`] line in `systemctl status`, and, with
//! `WatchdogSec=`, kills and restarts a daemon whose main loop stops calling
//! [`Notifier::watchdog`]. Outside systemd (a terminal, the tests, the demo) there is no
//! `NOTIFY_SOCKET` and every call does nothing.
//!
//! Sending is best-effort: systemd being unreachable must never stop the daemon delivering
//! cards, so a failed send is logged (the first one as a warning, later ones at debug level,
//! since a broken socket would otherwise repeat the warning at every watchdog ping) and forgotten.

use std::ffi::OsString;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Where notifications go. The default does nothing.
#[derive(Debug, Default)]
pub struct Notifier {
    socket: Option<Socket>,
    /// The whole `WATCHDOG_USEC`; the daemon pings at half of it.
    watchdog: Option<Duration>,
    /// Whether a failed send has been reported as a warning already.
    warned: AtomicBool,
}

/// The address in `NOTIFY_SOCKET`.
#[derive(Debug)]
enum Socket {
    Path(PathBuf),
    /// A Linux abstract socket name, written `@name` in the environment (without the `@`).
    Abstract(Vec<u8>),
}

impl Notifier {
    /// The notifier systemd asked for through the environment: `NOTIFY_SOCKET`, and
    /// `WATCHDOG_USEC` unless `WATCHDOG_PID` names another process (the watchdog is then meant
    /// for a parent). The variables are left set: unsetting them would need `unsafe` while
    /// other threads run, and no child process of the daemon reads them.
    pub fn from_env() -> Notifier {
        Notifier::from_vars(
            std::env::var_os("NOTIFY_SOCKET"),
            std::env::var_os("WATCHDOG_USEC"),
            std::env::var_os("WATCHDOG_PID"),
            std::process::id(),
        )
    }

    /// A notifier sending to `socket` (a path, or `@name` for an abstract socket), with a
    /// watchdog of `watchdog_usec` microseconds if given and not zero.
    pub(crate) fn new(socket: Option<OsString>, watchdog_usec: Option<u64>) -> Notifier {
        Notifier {
            socket: socket.and_then(parse_socket),
            watchdog: watchdog_usec
                .filter(|&usec| usec > 0)
                .map(Duration::from_micros),
            warned: AtomicBool::new(false),
        }
    }

    /// The environment's variables, read apart from it so the rules can be tested.
    fn from_vars(
        socket: Option<OsString>,
        watchdog_usec: Option<OsString>,
        watchdog_pid: Option<OsString>,
        our_pid: u32,
    ) -> Notifier {
        let ours = watchdog_pid
            .is_none_or(|pid| pid.to_str().and_then(|p| p.parse::<u32>().ok()) == Some(our_pid));
        let usec = watchdog_usec
            .filter(|_| ours)
            .and_then(|usec| usec.to_str().and_then(|u| u.parse::<u64>().ok()));
        Notifier::new(socket, usec)
    }

    /// The daemon is up: configuration read, store open, polling and delivery started. Also
    /// ends a reload announced with [`Notifier::reloading`].
    pub(crate) fn ready(&self) {
        self.send("READY=1");
    }

    /// One line saying what the daemon is doing, for `systemctl status`. Line breaks would start
    /// new `KEY=value` assignments, so they become spaces.
    pub(crate) fn status(&self, text: &str) {
        let line: String = text
            .chars()
            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
            .collect();
        self.send(&format!("STATUS={line}"));
    }

    /// A reload has begun; call [`Notifier::ready`] when it is over, whether it succeeded or the
    /// old configuration was kept. `MONOTONIC_USEC` lets systemd match this message to the
    /// reload it asked for (`Type=notify-reload`); `Type=notify` units ignore it.
    pub(crate) fn reloading(&self) {
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
    }

    /// The daemon is shutting down (deliveries under way are finishing).
    pub(crate) fn stopping(&self) {
        self.send("STOPPING=1");
    }

    /// The main loop is alive; due every [`Notifier::watchdog_interval`].
    pub(crate) fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// How often to call [`Notifier::watchdog`]: half the watchdog timeout, as
    /// `sd_watchdog_enabled(3)` advises, so one late tick is not fatal. `None` when systemd set
    /// no watchdog.
    pub(crate) fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|timeout| timeout / 2)
    }

    fn send(&self, message: &str) {
        let Some(socket) = &self.socket else {
            return;
        };
        if let Err(err) = send_to(socket, message.as_bytes()) {
            let first = !self.warned.swap(true, Ordering::Relaxed);
            if first {
                tracing::warn!(
                    socket = ?socket,
                    error = %err,
                    "cannot notify systemd; `systemctl status` may lag (next failures: debug level)"
                );
            } else {
                tracing::debug!(socket = ?socket, error = %err, "cannot notify systemd");
            }
        }
    }
}

/// `NOTIFY_SOCKET` as systemd writes it: an absolute path or `@` and an abstract name. Anything
/// else (empty, or a transport systemd added later such as `vsock:`) is not ours to speak.
fn parse_socket(raw: OsString) -> Option<Socket> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = raw.as_bytes();
    match bytes.first() {
        Some(b'/') => Some(Socket::Path(PathBuf::from(raw))),
        Some(b'@') if bytes.len() > 1 => Some(Socket::Abstract(bytes[1..].to_vec())),
        Some(_) => {
            tracing::warn!(
                notify_socket = ?raw,
                "NOTIFY_SOCKET is neither a path nor an abstract socket; not notifying systemd"
            );
            None
        }
        None => None,
    }
}

/// One datagram from a fresh unbound socket: notifications are rare (the watchdog's is the most
/// frequent), and nothing is held open between them.
fn send_to(socket: &Socket, message: &[u8]) -> io::Result<()> {
    let datagram = UnixDatagram::unbound()?;
    match socket {
        Socket::Path(path) => datagram.send_to(message, path)?,
        Socket::Abstract(name) => send_to_abstract(&datagram, name, message)?,
    };
    Ok(())
}

#[cfg(target_os = "linux")]
fn send_to_abstract(datagram: &UnixDatagram, name: &[u8], message: &[u8]) -> io::Result<usize> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    datagram.send_to_addr(message, &addr)
}

/// Abstract sockets exist only on Linux, as does systemd.
#[cfg(not(target_os = "linux"))]
fn send_to_abstract(_: &UnixDatagram, _: &[u8], _: &[u8]) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract sockets are Linux-only",
    ))
}

/// Now on `CLOCK_MONOTONIC`, in microseconds: the clock systemd compares reload times on
/// (`std::time::Instant` hides its value).
fn monotonic_usec() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec, and CLOCK_MONOTONIC exists on every system
    // bbzoom runs on, so the call only writes into it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    if rc != 0 {
        return 0;
    }
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
    secs * 1_000_000 + nanos / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket bound where systemd's would be, with a read timeout so a missing message fails
    /// the test instead of hanging it.
    fn listener(socket: UnixDatagram) -> UnixDatagram {
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        socket
    }

    fn receive(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn every_message_arrives_as_systemd_expects_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let systemd = listener(UnixDatagram::bind(&path).unwrap());
        let notifier = Notifier::new(Some(path.into()), None);

        notifier.ready();
        assert_eq!(receive(&systemd), "READY=1");
        notifier.status("polling 12 repositories\nwith 2 credentials\r");
        assert_eq!(
            receive(&systemd),
            "STATUS=polling 12 repositories with 2 credentials "
        );
        let before = monotonic_usec();
        notifier.reloading();
        let reloading = receive(&systemd);
        let usec = reloading
            .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
            .unwrap_or_else(|| panic!("unexpected message {reloading:?}"));
        let usec: u64 = usec.parse().unwrap();
        assert!(
            before <= usec && usec <= monotonic_usec(),
            "{usec} is now on CLOCK_MONOTONIC"
        );
        notifier.stopping();
        assert_eq!(receive(&systemd), "STOPPING=1");
        notifier.watchdog();
        assert_eq!(receive(&systemd), "WATCHDOG=1");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_abstract_socket_is_written_with_an_at_sign() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!(
            "bbzoom-notify-test-{}-{}",
            std::process::id(),
            monotonic_usec()
        );
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let systemd = listener(UnixDatagram::bind_addr(&addr).unwrap());
        let notifier = Notifier::from_vars(Some(format!("@{name}").into()), None, None, 1);

        notifier.ready();
        assert_eq!(receive(&systemd), "READY=1");
    }

    #[test]
    fn the_watchdog_is_pinged_at_half_its_timeout_and_only_if_it_is_ours() {
        let usec = Some(OsString::from("60000000"));
        let ours = Notifier::from_vars(None, usec.clone(), Some("42".into()), 42);
        assert_eq!(ours.watchdog_interval(), Some(Duration::from_secs(30)));
        let unnamed = Notifier::from_vars(None, usec.clone(), None, 42);
        assert_eq!(unnamed.watchdog_interval(), Some(Duration::from_secs(30)));
        let a_parents = Notifier::from_vars(None, usec, Some("7".into()), 42);
        assert_eq!(a_parents.watchdog_interval(), None);

        assert_eq!(Notifier::new(None, Some(0)).watchdog_interval(), None);
        let garbage = Notifier::from_vars(None, Some("soon".into()), None, 42);
        assert_eq!(garbage.watchdog_interval(), None);
        assert_eq!(Notifier::default().watchdog_interval(), None);
    }

    #[test]
    fn without_a_reachable_socket_every_call_is_harmless() {
        for notifier in [
            Notifier::default(),
            Notifier::from_vars(Some("".into()), None, None, 1),
            Notifier::from_vars(Some("vsock:2:1234".into()), None, None, 1),
        ] {
            assert!(notifier.socket.is_none(), "{notifier:?}");
            notifier.ready();
        }

        let dir = tempfile::tempdir().unwrap();
        let gone = Notifier::new(Some(dir.path().join("nobody-listens").into()), None);
        gone.ready();
        gone.status("still here");
        gone.reloading();
        gone.stopping();
        gone.watchdog();
        assert!(
            gone.warned.load(Ordering::Relaxed),
            "the failure was reported"
        );
    }
}
