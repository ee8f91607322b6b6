use sha2::{Digest, Sha256};
use std::path::Path;

/// Hex SHA-256 of some bytes: the identity of a file or config in every manifest.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn file_sha256(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("reading {} to hash it: {e}", path.display()))?;
    Ok(sha256_hex(&bytes))
}
