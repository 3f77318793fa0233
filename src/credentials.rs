//! Credentials at rest: a small TOML document of named credentials, encrypted with age to an
//! X25519 identity. The configuration file only names credentials; their values live here, are
//! decrypted once at start-up into [`SecretString`]s and never reach a log line, an error message
//! or `Debug` output.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// File mode of the identity: its owner's only. It is the one secret at rest.
const PRIVATE: u32 = 0o600;

/// File mode of a new credentials file. It is ciphertext, useless without the identity, and
/// the service's own (dynamic) user must read it to reload; an existing file keeps its mode.
const ENCRYPTED: u32 = 0o644;

/// One named credential, as `[NAME]` in the decrypted document.
#[derive(Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Credential {
    /// A Bitbucket Cloud repository, project or workspace access token, sent as `Bearer`.
    /// The best choice: each token has its own rate limit budget.
    BitbucketAccessToken { token: SecretString },
    /// A Bitbucket Cloud OAuth consumer; bbzoom fetches 2-hour access tokens with the
    /// client-credentials grant.
    BitbucketOauthConsumer { key: String, secret: SecretString },
    /// A Bitbucket Cloud API token, sent as HTTP Basic with the Atlassian account's e-mail.
    BitbucketApiToken { email: String, token: SecretString },
    /// A Bitbucket Data Center / Server HTTP access token, sent as `Bearer`.
    DatacenterToken { token: SecretString },
    /// A Zoom Incoming Webhook connection's verification token.
    ZoomWebhook { token: SecretString },
    /// A Zoom Team Chat chatbot app's OAuth client (client-credentials grant).
    ZoomChatbot {
        client_id: String,
        client_secret: SecretString,
    },
    /// A Zoom Server-to-Server OAuth app (account-credentials grant): the app whose event
    /// subscription carries chat commands over a WebSocket (`[zoom.events]`).
    ZoomServerToServer {
        account_id: String,
        client_id: String,
        client_secret: SecretString,
    },
}

impl Credential {
    /// Every `kind` value, for messages and prompts.
    pub const KINDS: [&'static str; 7] = [
        "bitbucket_access_token",
        "bitbucket_oauth_consumer",
        "bitbucket_api_token",
        "datacenter_token",
        "zoom_chatbot",
        "zoom_webhook",
        "zoom_server_to_server",
    ];

    /// The `kind` value, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::BitbucketAccessToken { .. } => Credential::KINDS[0],
            Credential::BitbucketOauthConsumer { .. } => Credential::KINDS[1],
            Credential::BitbucketApiToken { .. } => Credential::KINDS[2],
            Credential::DatacenterToken { .. } => Credential::KINDS[3],
            Credential::ZoomChatbot { .. } => Credential::KINDS[4],
            Credential::ZoomWebhook { .. } => Credential::KINDS[5],
            Credential::ZoomServerToServer { .. } => Credential::KINDS[6],
        }
    }

    /// Its fields as (name, value) in document order: the one place that knows each kind's
    /// layout for writing.
    fn fields(&self) -> Vec<(&'static str, &str)> {
        match self {
            Credential::BitbucketAccessToken { token }
            | Credential::DatacenterToken { token }
            | Credential::ZoomWebhook { token } => {
                vec![("token", token.expose_secret())]
            }
            Credential::BitbucketOauthConsumer { key, secret } => {
                vec![("key", key.as_str()), ("secret", secret.expose_secret())]
            }
            Credential::BitbucketApiToken { email, token } => {
                vec![("email", email.as_str()), ("token", token.expose_secret())]
            }
            Credential::ZoomChatbot {
                client_id,
                client_secret,
            } => vec![
                ("client_id", client_id.as_str()),
                ("client_secret", client_secret.expose_secret()),
            ],
            Credential::ZoomServerToServer {
                account_id,
                client_id,
                client_secret,
            } => vec![
                ("account_id", account_id.as_str()),
                ("client_id", client_id.as_str()),
                ("client_secret", client_secret.expose_secret()),
            ],
        }
    }
}

/// Same kind and every field equal, secrets included: what tells a credential replaced by new
/// values from one stored again unchanged.
impl PartialEq for Credential {
    fn eq(&self, other: &Self) -> bool {
        self.kind() == other.kind() && self.fields() == other.fields()
    }
}

impl Eq for Credential {}

/// Where a credential serves; each place takes its own kinds. The one statement of which kind
/// fits where: the daemon, `check` and `connect` all ask it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Polling Bitbucket Cloud.
    Cloud,
    /// Polling a Bitbucket Data Center instance.
    DataCenter,
    /// The Zoom chatbot app.
    Chatbot,
    /// An Incoming Webhook connection.
    Webhook,
    /// The Server-to-Server OAuth app of `[zoom.events]`.
    Events,
}

impl Role {
    /// Whether `credential` can serve here. Exhaustive on purpose: a new kind must be placed.
    pub fn fits(self, credential: &Credential) -> bool {
        match credential {
            Credential::BitbucketAccessToken { .. }
            | Credential::BitbucketOauthConsumer { .. }
            | Credential::BitbucketApiToken { .. } => self == Role::Cloud,
            Credential::DatacenterToken { .. } => self == Role::DataCenter,
            Credential::ZoomChatbot { .. } => self == Role::Chatbot,
            Credential::ZoomWebhook { .. } => self == Role::Webhook,
            Credential::ZoomServerToServer { .. } => self == Role::Events,
        }
    }

    /// The kinds that fit, for messages.
    pub fn kinds(self) -> &'static str {
        match self {
            Role::Cloud => {
                "bitbucket_access_token, bitbucket_oauth_consumer or bitbucket_api_token"
            }
            Role::DataCenter => "datacenter_token",
            Role::Chatbot => "zoom_chatbot",
            Role::Webhook => "zoom_webhook",
            Role::Events => "zoom_server_to_server",
        }
    }

    /// The `bbzoom connect` service that stores such a credential.
    pub fn service(self) -> &'static str {
        match self {
            Role::Cloud | Role::DataCenter => "bitbucket",
            Role::Chatbot | Role::Webhook | Role::Events => "zoom",
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential({}, [REDACTED])", self.kind())
    }
}

/// Every credential of the decrypted file, by name.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    entries: BTreeMap<String, Credential>,
}

/// Why the credentials could not be read. Messages name files, never contents.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{path}: cannot read: {cause}")]
    Io {
        path: PathBuf,
        // Not named `source`: the message carries it, and a chain would print it twice.
        cause: std::io::Error,
    },
    #[error("{path}: not an age X25519 identity (expected a line starting AGE-SECRET-KEY-1)")]
    BadIdentity { path: PathBuf },
    #[error(
        "{path}: the identity is readable by others (mode {mode:04o}); like ssh with a private \
         key, bbzoom will not use it: run `chmod 600 {path}`",
        path = .path.display()
    )]
    ExposedIdentity { path: PathBuf, mode: u32 },
    #[error("{path}: cannot decrypt with the identity {identity}: {reason}")]
    Decrypt {
        path: PathBuf,
        identity: PathBuf,
        reason: String,
    },
    #[error("{path}: decrypted, but the contents are not a valid credentials document: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("{path}: cannot write: {cause}")]
    Write {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "{path} is a symbolic link to {target}; bbzoom replaces the file whole, which would \
         replace the link: point [daemon] credentials at {target} itself",
        path = .path.display(),
        target = .target.display()
    )]
    Symlink { path: PathBuf, target: PathBuf },
}

/// The lock on a credentials file, held from reading it to replacing it (`connect`,
/// `disconnect`): two of them at once would each write back what they read and lose the
/// other's credential. Released when dropped.
pub struct CredentialsLock {
    _file: std::fs::File,
}

impl CredentialsLock {
    /// Waits for and takes the lock of `credentials_file`: an advisory `flock` on `.NAME.lock`
    /// beside it (the file itself is replaced by each save, so it cannot carry the lock).
    /// Refuses a symlinked file, and removes the temporary files a killed writer left.
    pub fn take(credentials_file: &Path) -> Result<CredentialsLock, CredentialsError> {
        if let Ok(target) = std::fs::read_link(credentials_file) {
            let dir = credentials_file.parent().unwrap_or(Path::new(""));
            return Err(CredentialsError::Symlink {
                path: credentials_file.to_owned(),
                target: dir.join(target),
            });
        }
        let name = credentials_file
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let lock_path = credentials_file.with_file_name(format!(".{name}.lock"));
        let failed = |cause| CredentialsError::Write {
            path: lock_path.clone(),
            cause,
        };
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .custom_flags(libc::O_NOFOLLOW)
                .mode(PRIVATE)
                .open(&lock_path)
                .map_err(failed)?
        };
        loop {
            use std::os::fd::AsRawFd;
            // SAFETY: flock on a descriptor we own; it has no other precondition.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(failed(err));
            }
        }
        // Under the lock no writer is under way: any temporary file is a dead one's.
        crate::atomic_file::remove_leftovers(credentials_file).map_err(|cause| {
            CredentialsError::Write {
                path: credentials_file.to_owned(),
                cause,
            }
        })?;
        Ok(CredentialsLock { _file: file })
    }
}

impl Credentials {
    /// Decrypts `credentials_file` with the identity in `identity_file` and parses it.
    pub fn load(
        credentials_file: &Path,
        identity_file: &Path,
    ) -> Result<Credentials, CredentialsError> {
        // The file before the identity: a missing file is then told apart from a missing
        // identity, which `load_or_empty` relies on.
        let (ciphertext, _) = crate::files::read_regular(credentials_file).map_err(|source| {
            CredentialsError::Io {
                path: credentials_file.to_owned(),
                cause: source,
            }
        })?;
        let identities = read_identity(identity_file)?;
        let plaintext =
            decrypt(&identities, &ciphertext).map_err(|e| CredentialsError::Decrypt {
                path: credentials_file.to_owned(),
                identity: identity_file.to_owned(),
                reason: e.to_string(),
            })?;
        let text = String::from_utf8(plaintext).map_err(|_| CredentialsError::Malformed {
            path: credentials_file.to_owned(),
            reason: "not UTF-8".into(),
        })?;
        Credentials::parse(&text).map_err(|reason| CredentialsError::Malformed {
            path: credentials_file.to_owned(),
            reason,
        })
    }

    /// As [`Credentials::load`], except that a credentials file that does not exist yet holds no
    /// credentials (the identity is then not needed either): `bbzoom connect` creates the file.
    /// A file that exists but cannot be read or decrypted is still an error.
    pub fn load_or_empty(
        credentials_file: &Path,
        identity_file: &Path,
    ) -> Result<Credentials, CredentialsError> {
        match Credentials::load(credentials_file, identity_file) {
            Err(CredentialsError::Io {
                path,
                cause: source,
            }) if path == credentials_file && source.kind() == std::io::ErrorKind::NotFound => {
                Ok(Credentials::default())
            }
            other => other,
        }
    }

    /// Parses a decrypted document. The error never quotes the document (it holds secrets).
    fn parse(text: &str) -> Result<Credentials, String> {
        let entries: BTreeMap<String, Credential> = toml::from_str(text).map_err(|e| {
            // toml's message quotes the offending line; keep only its first sentence.
            e.message()
                .lines()
                .next()
                .unwrap_or("invalid TOML")
                .to_owned()
        })?;
        Ok(Credentials { entries })
    }

    pub fn get(&self, name: &str) -> Option<&Credential> {
        self.entries.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    pub fn insert(&mut self, name: impl Into<String>, credential: Credential) {
        self.entries.insert(name.into(), credential);
    }

    /// Removes the entry `name`, returning it if there was one.
    pub fn remove(&mut self, name: &str) -> Option<Credential> {
        self.entries.remove(name)
    }

    /// The plaintext document; only ever handed to age for encryption.
    fn to_document(&self) -> SecretString {
        let mut doc = toml::Table::new();
        for (name, credential) in &self.entries {
            let mut entry = toml::Table::new();
            entry.insert("kind".into(), credential.kind().into());
            for (field, value) in credential.fields() {
                entry.insert(field.into(), value.into());
            }
            doc.insert(name.clone(), toml::Value::Table(entry));
        }
        SecretString::from(doc.to_string())
    }

    /// Encrypts to the public half of every key in `identity_file` and replaces `credentials_file` atomically
    /// (write a sibling, fsync, rename), so a crash leaves either the old file or the new one.
    pub fn save(
        &self,
        credentials_file: &Path,
        identity_file: &Path,
    ) -> Result<(), CredentialsError> {
        let recipients: Vec<_> = read_identity(identity_file)?
            .iter()
            .map(age::x25519::Identity::to_public)
            .collect();
        let ciphertext = encrypt(&recipients, self.to_document().expose_secret().as_bytes())
            .map_err(|e| CredentialsError::Write {
                path: credentials_file.to_owned(),
                cause: e,
            })?;
        let mode = crate::atomic_file::mode_or(credentials_file, ENCRYPTED);
        crate::atomic_file::write(credentials_file, &ciphertext, mode).map_err(|source| {
            CredentialsError::Write {
                path: credentials_file.to_owned(),
                cause: source,
            }
        })
    }
}

/// Creates a new X25519 identity at `path` (mode 0600) unless one is already there, which is then
/// read and validated instead.
pub fn ensure_identity(path: &Path) -> Result<(), CredentialsError> {
    let identity = age::x25519::Identity::generate();
    let text = SecretString::from(format!(
        "# bbzoom credentials identity; public key: {}\n{}\n",
        identity.to_public(),
        identity.to_string().expose_secret()
    ));
    // Created, never replaced: of two first-time `bbzoom connect`s racing here, the second must
    // not swap the identity after the first has encrypted credentials to it, so it uses that one.
    match crate::atomic_file::create_new(path, text.expose_secret().as_bytes(), PRIVATE) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => check_identity(path),
        written => written.map_err(|source| CredentialsError::Write {
            path: path.to_owned(),
            cause: source,
        }),
    }
}

/// Reads and validates the identity at `path` without ever creating one.
pub fn check_identity(path: &Path) -> Result<(), CredentialsError> {
    read_identity(path).map(drop)
}

/// Every key of the identity file at `path` (one at least), as age's own tools read such a
/// file: any of them may decrypt, and the credentials are encrypted to all of them. A file
/// group or others may read is refused, as ssh refuses such a private key.
fn read_identity(path: &Path) -> Result<Vec<age::x25519::Identity>, CredentialsError> {
    use std::os::unix::fs::PermissionsExt;
    let (text, meta) = crate::files::read_text(path).map_err(|source| CredentialsError::Io {
        path: path.to_owned(),
        cause: source,
    })?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(CredentialsError::ExposedIdentity {
            path: path.to_owned(),
            mode,
        });
    }
    let bad = || CredentialsError::BadIdentity {
        path: path.to_owned(),
    };
    let keys = text
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("AGE-SECRET-KEY-"))
        .map(|line| age::x25519::Identity::from_str(line).map_err(|_| bad()))
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(bad());
    }
    Ok(keys)
}

/// `ciphertext` decrypted with whichever of `identities` it was encrypted to.
fn decrypt(
    identities: &[age::x25519::Identity],
    ciphertext: &[u8],
) -> Result<Vec<u8>, age::DecryptError> {
    use std::io::Read;
    let decryptor = age::Decryptor::new_buffered(ciphertext)?;
    let mut reader = decryptor.decrypt(identities.iter().map(|key| key as &dyn age::Identity))?;
    let mut plaintext = Vec::new();
    reader.read_to_end(&mut plaintext)?;
    Ok(plaintext)
}

/// `plaintext` encrypted so that any of `recipients` can decrypt it.
fn encrypt(
    recipients: &[age::x25519::Recipient],
    plaintext: &[u8],
) -> Result<Vec<u8>, std::io::Error> {
    use std::io::Write;
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|key| key as &dyn age::Recipient))
            .map_err(std::io::Error::other)?;
    let mut ciphertext = Vec::new();
    let mut writer = encryptor.wrap_output(&mut ciphertext)?;
    writer.write_all(plaintext)?;
    writer.finish()?;
    Ok(ciphertext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_encrypts_and_never_shows_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let identity = dir.path().join("identity.txt");
        let file = dir.path().join("credentials.age");
        ensure_identity(&identity).unwrap();
        let mut credentials = Credentials::default();
        credentials.insert(
            "bb",
            Credential::BitbucketAccessToken {
                token: "tok-SECRET-1".into(),
            },
        );
        credentials.insert(
            "zoom",
            Credential::ZoomChatbot {
                client_id: "cid".into(),
                client_secret: "zs-SECRET-2".into(),
            },
        );
        let events = Credential::ZoomServerToServer {
            account_id: "acct".into(),
            client_id: "s2s".into(),
            client_secret: "s2s-SECRET-3".into(),
        };
        credentials.insert("events", events.clone());
        credentials.save(&file, &identity).unwrap();

        let raw = std::fs::read(&file).unwrap();
        let raw = String::from_utf8_lossy(&raw);
        assert!(
            !raw.contains("SECRET"),
            "ciphertext holds no plaintext secret"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&identity).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let loaded = Credentials::load(&file, &identity).unwrap();
        match loaded.get("bb") {
            Some(Credential::BitbucketAccessToken { token }) => {
                assert_eq!(token.expose_secret(), "tok-SECRET-1")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(loaded.get("events"), Some(&events));
        assert!(!format!("{loaded:?}").contains("SECRET"));
    }

    #[test]
    fn concurrent_first_identities_agree_on_one() {
        for _ in 0..100 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("identity.txt");
            let barrier = std::sync::Barrier::new(2);
            let results: Vec<Result<String, CredentialsError>> = std::thread::scope(|scope| {
                let racers: Vec<_> = (0..2)
                    .map(|_| {
                        scope.spawn(|| {
                            barrier.wait();
                            ensure_identity(&path)
                                .and_then(|()| read_identity(&path))
                                .map(|keys| keys[0].to_public().to_string())
                        })
                    })
                    .collect();
                racers.into_iter().map(|r| r.join().unwrap()).collect()
            });
            let keys: Vec<String> = results.into_iter().map(Result::unwrap).collect();
            assert_eq!(keys[0], keys[1], "both use the one identity");
            let stored = read_identity(&path).unwrap()[0].to_public().to_string();
            assert_eq!(stored, keys[0]);
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        }
    }

    #[test]
    fn checking_an_identity_never_creates_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.txt");
        let err = check_identity(&path).unwrap_err();
        assert!(matches!(err, CredentialsError::Io { .. }), "{err}");
        assert!(!path.exists());
        std::fs::write(&path, "not an identity\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = check_identity(&path).unwrap_err();
        assert!(matches!(err, CredentialsError::BadIdentity { .. }), "{err}");
        assert!(
            ensure_identity(&path).is_err(),
            "a bad identity is not replaced"
        );
        std::fs::remove_file(&path).unwrap();
        ensure_identity(&path).unwrap();
        check_identity(&path).unwrap();
    }

    #[test]
    fn an_identity_others_can_read_is_refused_with_the_chmod_to_run() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.txt");
        ensure_identity(&path).unwrap();
        for mode in [0o640, 0o604, 0o644] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = check_identity(&path).unwrap_err();
            assert!(
                matches!(err, CredentialsError::ExposedIdentity { .. }),
                "{err}"
            );
            assert!(
                err.to_string()
                    .contains(&format!("chmod 600 {}", path.display())),
                "{err}"
            );
            assert!(!err.to_string().contains("AGE-SECRET-KEY"), "{err}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        check_identity(&path).unwrap();
    }

    #[test]
    fn every_key_of_the_identity_file_decrypts_and_is_encrypted_to() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (
            age::x25519::Identity::generate(),
            age::x25519::Identity::generate(),
        );
        let key_line = |key: &age::x25519::Identity| key.to_string().expose_secret().to_owned();
        let write_identity = |name: &str, keys: &[&age::x25519::Identity]| {
            let path = dir.path().join(name);
            let lines: Vec<String> = keys.iter().map(|key| key_line(key)).collect();
            std::fs::write(&path, format!("# keys\n{}\n", lines.join("\n"))).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            path
        };
        let file = dir.path().join("credentials.age");
        let mut credentials = Credentials::default();
        credentials.insert("bb", Credential::DatacenterToken { token: "t".into() });
        // Encrypted to the second key only: an identity file listing it second still decrypts.
        credentials
            .save(&file, &write_identity("new.txt", &[&new]))
            .unwrap();
        let both = write_identity("both.txt", &[&old, &new]);
        assert!(Credentials::load(&file, &both).unwrap().get("bb").is_some());
        // Saved with both, either one alone decrypts.
        credentials.save(&file, &both).unwrap();
        for alone in [
            write_identity("old.txt", &[&old]),
            write_identity("new.txt", &[&new]),
        ] {
            assert!(
                Credentials::load(&file, &alone)
                    .unwrap()
                    .get("bb")
                    .is_some()
            );
        }
    }

    #[test]
    fn every_kind_fits_exactly_one_role() {
        let secret = || SecretString::from("s");
        let all = [
            Credential::BitbucketAccessToken { token: secret() },
            Credential::BitbucketOauthConsumer {
                key: "k".into(),
                secret: secret(),
            },
            Credential::BitbucketApiToken {
                email: "e".into(),
                token: secret(),
            },
            Credential::DatacenterToken { token: secret() },
            Credential::ZoomChatbot {
                client_id: "c".into(),
                client_secret: secret(),
            },
            Credential::ZoomWebhook { token: secret() },
            Credential::ZoomServerToServer {
                account_id: "a".into(),
                client_id: "c".into(),
                client_secret: secret(),
            },
        ];
        let roles = [
            Role::Cloud,
            Role::DataCenter,
            Role::Chatbot,
            Role::Webhook,
            Role::Events,
        ];
        for credential in &all {
            let fitting: Vec<Role> = roles.into_iter().filter(|r| r.fits(credential)).collect();
            assert_eq!(fitting.len(), 1, "{credential:?} fits {fitting:?}");
            assert!(fitting[0].kinds().contains(credential.kind()));
        }
    }

    #[test]
    fn equality_compares_the_kind_and_every_field() {
        let bearer = |token: &str| Credential::BitbucketAccessToken {
            token: token.into(),
        };
        let bot = |client_id: &str, client_secret: &str| Credential::ZoomChatbot {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        };
        assert_eq!(bearer("t-1"), bearer("t-1"));
        assert_ne!(bearer("t-1"), bearer("t-2"));
        assert_ne!(
            bearer("t-1"),
            Credential::DatacenterToken {
                token: "t-1".into()
            }
        );
        assert_eq!(bot("id", "s-1"), bot("id", "s-1"));
        assert_ne!(bot("id", "s-1"), bot("other", "s-1"));
        assert_ne!(bot("id", "s-1"), bot("id", "s-2"));
    }

    #[test]
    fn a_missing_file_loads_empty_and_an_unreadable_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (identity, file) = (
            dir.path().join("identity.txt"),
            dir.path().join("credentials.age"),
        );
        let none = Credentials::load_or_empty(&file, &identity).unwrap();
        assert_eq!(none.names().count(), 0);

        std::fs::write(&file, b"not age").unwrap();
        let err = Credentials::load_or_empty(&file, &identity).unwrap_err();
        assert!(
            err.to_string().contains("identity.txt"),
            "the missing identity is named: {err}"
        );
        ensure_identity(&identity).unwrap();
        let err = Credentials::load_or_empty(&file, &identity).unwrap_err();
        assert!(matches!(err, CredentialsError::Decrypt { .. }), "{err}");
    }

    #[test]
    fn wrong_identity_and_malformed_documents_are_named_without_contents() {
        let dir = tempfile::tempdir().unwrap();
        let (id_a, id_b) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
        ensure_identity(&id_a).unwrap();
        ensure_identity(&id_b).unwrap();
        let file = dir.path().join("credentials.age");
        let mut credentials = Credentials::default();
        credentials.insert(
            "bb",
            Credential::BitbucketAccessToken {
                token: "tok-SECRET".into(),
            },
        );
        credentials.save(&file, &id_a).unwrap();
        let err = Credentials::load(&file, &id_b).unwrap_err().to_string();
        assert!(
            err.contains("cannot decrypt") && err.contains("b.txt"),
            "{err}"
        );

        let bad =
            Credentials::parse("[bb]\nkind = \"bitbucket_access_token\"\ntokn = \"tok-SECRET\"\n")
                .unwrap_err();
        assert!(!bad.contains("SECRET"), "{bad}");
    }
}
