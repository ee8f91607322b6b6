use sha2::{Digest, Sha256};

/// Hex SHA-256 of some bytes: the identity of a file or config in every manifest.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first 12 digits of a hex digest, for messages and tables; a shorter string whole.
/// Never slices inside a character, whatever the string holds.
pub fn short(hex: &str) -> &str {
    hex.get(..12).unwrap_or(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_never_panics_on_short_or_non_ascii_text() {
        let digest = sha256_hex(b"x");
        assert_eq!(short(&digest), &digest[..12]);
        assert_eq!(short("abc"), "abc");
        let odd = format!("a{}", "é".repeat(10));
        assert_eq!(short(&odd), odd, "byte 12 is inside a character");
    }
}
