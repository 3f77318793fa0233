//! Stable identifiers derived from names: the same repository, pipeline, person or commit gets
//! the same UUID or hash in every answer and every run, without storing any of them.

/// A braced, lower-case version-4-looking UUID, as Bitbucket writes them, from a seed.
pub(super) fn uuid_from(seed: u64) -> String {
    let hi = splitmix(seed);
    let lo = splitmix(hi);
    format!(
        "{{{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}}}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0x0fff,
        ((lo >> 48) & 0x3fff) | 0x8000,
        lo & 0xffff_ffff_ffff
    )
}

/// A 40-hex, git-looking commit hash from a seed.
pub(super) fn hash40(seed: u64) -> String {
    let a = splitmix(seed);
    let b = splitmix(a);
    let c = splitmix(b);
    format!("{a:016x}{b:016x}{:08x}", c >> 32)
}

/// 64-bit FNV-1a: a stable (unlike `std`'s) hash of a name.
pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// SplitMix64's output function: spreads a seed over all 64 bits.
pub(super) fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The handle a display name gets (`priya.raman`), for nicknames and user names.
pub(super) fn nickname(name: &str) -> String {
    name.to_lowercase().replace(' ', ".")
}

/// The e-mail address a display name gets, for commit authors.
pub(super) fn email(name: &str) -> String {
    format!("{}@example.com", nickname(name))
}

/// `{` and `}` percent-encoded, for UUIDs inside URL paths.
pub(super) fn encode_braces(uuid: &str) -> String {
    uuid.replace('{', "%7B").replace('}', "%7D")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let uuid = uuid_from(7);
        assert_eq!(uuid.len(), 38);
        assert!(uuid.starts_with('{') && uuid.ends_with('}'));
        let hash = hash40(7);
        assert_eq!(hash.len(), 40);
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(hash40(7), hash40(8));
        assert_eq!(encode_braces("{a}"), "%7Ba%7D");
        assert_eq!(email("Priya Raman"), "priya.raman@example.com");
    }
}
