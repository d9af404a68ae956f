//! Random identifiers from the operating system's CSPRNG: environment client keys, server-side keys,
//! admin tokens, UUIDs and hashing seeds.

/// The shortuuid alphabet Flagsmith uses for keys (no look-alike characters).
const KEY_ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// Fills `buf` from the OS CSPRNG.
///
/// # Panics
///
/// When the operating system has no randomness source: nothing secure can be done without one.
pub(crate) fn fill(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random source is unavailable");
}

/// `len` characters drawn uniformly from `alphabet` (rejection sampling, no modulo bias).
fn random_string(alphabet: &[u8], len: usize) -> String {
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        fill(&mut buf);
        for &b in &buf {
            if (b as usize) < limit && out.len() < len {
                out.push(alphabet[b as usize % alphabet.len()] as char);
            }
        }
    }
    out
}

/// A 22-character environment client key (about 128 bits).
pub fn client_key() -> String {
    random_string(KEY_ALPHABET, 22)
}

/// A server-side SDK key: `ser.` and 22 random characters.
pub fn server_key() -> String {
    format!("ser.{}", random_string(KEY_ALPHABET, 22))
}

/// An admin token or organisation API key secret: 40 characters (about 233 bits).
pub fn token() -> String {
    random_string(KEY_ALPHABET, 40)
}

/// A random (version 4) UUID in lowercase hyphenated form.
pub fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A hashing seed in `1..2^31`, so that it fits every SDK's integer parsing (Rust's is `u32`).
pub fn seed() -> i64 {
    let mut b = [0u8; 4];
    fill(&mut b);
    i64::from(u32::from_le_bytes(b) & 0x7fff_ffff).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let key = client_key();
        assert_eq!(key.len(), 22);
        assert!(key.bytes().all(|b| KEY_ALPHABET.contains(&b)));
        assert_ne!(key, client_key());
        assert!(server_key().starts_with("ser.") && server_key().len() == 26);
        let uuid = uuid_v4();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
        assert!((1..1 << 31).contains(&seed()));
    }
}
