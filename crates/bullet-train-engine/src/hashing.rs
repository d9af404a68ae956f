//! Flagsmith's percentage hash (evaluation.md section 3.1): MD5 of the comma-joined ids, read as a
//! big-endian 128-bit integer, `mod 9999`, scaled to [0, 100); a result of exactly 100 is hashed again
//! with the id list repeated.
//!
//! Ids are given as lists of pieces that are hashed as if concatenated, so that the composite identity
//! key `<environment key>_<identifier>` never has to be allocated.

use md5::{Digest, Md5};

/// One id of the hash input, made of pieces that are concatenated.
pub(crate) type IdPieces<'a> = &'a [&'a str];

/// The percentage in [0, 100) for the given ids, each id given as pieces.
pub(crate) fn percentage_of_pieces(ids: &[IdPieces<'_>]) -> f64 {
    let mut iterations = 1;
    loop {
        let mut md5 = Md5::new();
        for round in 0..iterations {
            for (i, id) in ids.iter().enumerate() {
                if round > 0 || i > 0 {
                    md5.update(b",");
                }
                for piece in id.iter() {
                    md5.update(piece.as_bytes());
                }
            }
        }
        let digest: [u8; 16] = md5.finalize().into();
        let k = u128::from_be_bytes(digest) % 9999;
        // Divide first, then multiply: bit-identical to Python.
        let value = (k as f64 / 9998.0) * 100.0;
        if value != 100.0 {
            return value;
        }
        iterations += 1;
    }
}

/// The percentage in [0, 100) that Flagsmith assigns to a list of ids, for example
/// `[segment key, identity key]`.
///
/// ```
/// let p = bullet_train_engine::hashed_percentage(&["1", "2"]);
/// assert_eq!(p, 26.59531906381276);
/// ```
pub fn hashed_percentage(ids: &[&str]) -> f64 {
    let pieces: Vec<[&str; 1]> = ids.iter().map(|id| [*id]).collect();
    let refs: Vec<&[&str]> = pieces.iter().map(|p| &p[..]).collect();
    percentage_of_pieces(&refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_vectors() {
        // Test vectors computed by the Python reference engine (evaluation.md section 3.1).
        let cases: [(&[&str], f64); 7] = [
            (&["1", "2"], 26.59531906381276),
            (&["4268", "32102998"], 14.912982596519303),
            (&["78986", "32102998"], 53.87077415483097),
            (&["78986", "test_env_foobar"], 54.53090618123625),
            (
                &["1016366", "8AYnz4q3KEfT5DFtnramnP_user-123"],
                39.19783956791358,
            ),
            (&["seg", "user_6393"], 86.66733346669334),
            (&["seg", "user_7411"], 7.261452290458091),
        ];
        for (ids, expected) in cases {
            assert_eq!(hashed_percentage(ids), expected, "{ids:?}");
        }
    }

    #[test]
    fn pieces_hash_like_the_concatenation() {
        let joined = hashed_percentage(&["1016366", "8AYnz4q3KEfT5DFtnramnP_user-123"]);
        let pieces =
            percentage_of_pieces(&[&["1016366"], &["8AYnz4q3KEfT5DFtnramnP", "_", "user-123"]]);
        assert_eq!(joined, pieces);
    }
}
