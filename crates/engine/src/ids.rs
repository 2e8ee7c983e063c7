//! Random ids and container names, and the timestamps records carry.

use std::fs;

/// Docker's "never" (Go's zero time), for times that have not happened.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Now, in RFC 3339 with nanoseconds.
pub(crate) fn now() -> String {
    cais_runtime::state::rfc3339(std::time::SystemTime::now())
}

/// `bytes` random bytes from /dev/urandom, in hex (ids are 32 bytes).
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut buf);
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

const ADJECTIVES: [&str; 16] = [
    "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid", "mellow",
    "nimble", "proud", "quiet", "sharp", "tender", "witty",
];
const NOUNS: [&str; 16] = [
    "anchor", "barge", "cargo", "crane", "dock", "ferry", "harbor", "hull", "keel", "mast", "pier",
    "quay", "sail", "tide", "vessel", "wharf",
];

/// A name for a container created without one (`adjective_noun_hex`).
pub(crate) fn random_name() -> String {
    let r = random_hex(4);
    let n = u32::from_str_radix(&r, 16).unwrap_or(0) as usize;
    format!(
        "{}_{}_{}",
        ADJECTIVES[n % 16],
        NOUNS[(n / 16) % 16],
        &r[..4]
    )
}

/// Docker's rule for container and network names.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(valid_name("web-1") && valid_name("a.b_c"));
        assert!(!valid_name("-x") && !valid_name("a/b") && !valid_name(""));
        assert!(valid_name(&random_name()));
        assert_eq!(random_hex(32).len(), 64);
    }
}
