//! The layer cache. Every step's result is an image state (config and
//! layers) stored as a config and manifest in the content store and
//! *pinned* under its cache key (`<store root>/pins/build-cache/<key>`),
//! which keeps it, its layers and their snapshots from GC without making
//! it an image. The key chains: a step's key is the hash of its parent's
//! key, the instruction after expansion (with the build args it sees) and,
//! for COPY/ADD, a hash of the copied content. So one changed input
//! changes every key after it, and `builder prune` is "unpin the group".

use sha2::{Digest as _, Sha256};

/// The pin group holding cache entries.
pub(crate) const GROUP: &str = "build-cache";

/// An incremental key: feed it length-prefixed parts, so `("ab","c")` and
/// `("a","bc")` differ.
pub(crate) struct Key(Sha256);

impl Key {
    pub(crate) fn new(kind: &str) -> Key {
        let mut k = Key(Sha256::new());
        k.part(kind.as_bytes());
        k
    }

    pub(crate) fn part(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    pub(crate) fn hex(self) -> String {
        self.0
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A child key: parent key + parts.
pub(crate) fn child(parent: &str, parts: &[&[u8]]) -> String {
    let mut k = Key::new("step");
    k.part(parent.as_bytes());
    for p in parts {
        k.part(p);
    }
    k.hex()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_length_prefixed_and_chained() {
        assert_ne!(child("p", &[b"ab", b"c"]), child("p", &[b"a", b"bc"]));
        assert_ne!(child("p", &[b"x"]), child("q", &[b"x"]));
        assert_eq!(child("p", &[b"x"]), child("p", &[b"x"]));
        assert_eq!(child("p", &[]).len(), 64);
    }
}
