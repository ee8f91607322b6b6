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
