//! Ids in the shape Losant uses: 24 hex characters, like a MongoDB ObjectId.
//!
//! Layout (12 bytes): 4 bytes of seconds since the epoch (big-endian, so ids sort by creation
//! time), 5 random bytes chosen once per process, and a 3-byte counter that starts at a random
//! value. Two ids made in the same second by one process differ in the counter; ids from two
//! processes differ in the random middle.

/// A map keyed by ids the server made (flow ids, reply ids, token digests), hashed with
/// foldhash (seeded per process): a fraction of the standard SipHash's work for such short
/// keys, looked up several times a run. Keys a user chooses (storage keys, channel names) stay
/// on the standard hasher, which resists crafted collisions.
pub type IdMap<V> = std::collections::HashMap<String, V, foldhash::fast::RandomState>;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

static PROCESS_RANDOM: OnceLock<[u8; 5]> = OnceLock::new();
static COUNTER: OnceLock<AtomicU32> = OnceLock::new();

/// A fresh 24-hex id.
pub fn new_id() -> String {
    let secs = chrono::Utc::now().timestamp().clamp(0, u32::MAX as i64) as u32;
    let random = PROCESS_RANDOM.get_or_init(rand::random);
    let counter = COUNTER
        .get_or_init(|| AtomicU32::new(rand::random::<u32>() & 0x00ff_ffff))
        .fetch_add(1, Ordering::Relaxed)
        & 0x00ff_ffff;
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&secs.to_be_bytes());
    bytes[4..9].copy_from_slice(random);
    bytes[9..].copy_from_slice(&counter.to_be_bytes()[1..]);
    hex_lower(&bytes)
}

/// Lower-case hex of `bytes`, written into place (`hex::encode` collects an iterator of chars,
/// which showed in the profile of a press: every run, request and token check makes one).
pub fn hex_lower(bytes: &[u8]) -> String {
    let mut text = vec![0u8; bytes.len() * 2];
    // Cannot fail: the output is exactly twice the input.
    let _ = hex::encode_to_slice(bytes, &mut text);
    // Hex digits are ASCII.
    String::from_utf8(text).unwrap_or_default()
}

/// Whether `s` has the shape of an id (`^[A-Fa-f\d]{24}$`, the pattern of Losant's path ids).
pub fn is_id(s: &str) -> bool {
    s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_24_hex_unique_and_ordered() {
        let ids: Vec<String> = (0..1000).map(|_| new_id()).collect();
        assert!(ids.iter().all(|id| is_id(id)));
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        // The time prefix never goes backwards.
        assert!(ids.windows(2).all(|w| w[0][..8] <= w[1][..8]));
    }

    #[test]
    fn hex_is_lower_case_and_complete() {
        assert_eq!(hex_lower(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(hex_lower(&[]), "");
    }

    #[test]
    fn id_shape_is_checked() {
        assert!(is_id("575ec8687ae143cd83dc4a97"));
        assert!(is_id("575EC8687AE143CD83DC4A97"));
        assert!(!is_id("575ec8687ae143cd83dc4a9"));
        assert!(!is_id("575ec8687ae143cd83dc4a9g"));
        assert!(!is_id(""));
    }
}
