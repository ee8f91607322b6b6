//! A data file's path in a config: what the file wrote, and where that is from here.
//!
//! A config names its data files relative to its own folder, so `data/words4.txt` in
//! `pipeline.toml` is read as `FOLDER/data/words4.txt`. Only what the file wrote goes into a
//! stage's settings hash: the same config reached as `pipeline.toml`, `./pipeline.toml` or
//! `/abs/path/pipeline.toml` makes the same stages, and a finished one is not retrained.

use std::ops::Deref;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataPath {
    /// As the config wrote it (what is serialized, and hashed).
    written: PathBuf,
    /// Where it is read from: `written` against the config's folder.
    resolved: PathBuf,
}

impl DataPath {
    /// Reads `written` as relative to the config's folder `base` (an absolute path stays).
    pub fn resolve(&mut self, base: &Path) {
        self.resolved = crate::relative_to(base, &self.written);
    }
}

impl From<PathBuf> for DataPath {
    fn from(path: PathBuf) -> Self {
        Self {
            resolved: path.clone(),
            written: path,
        }
    }
}

impl From<&str> for DataPath {
    fn from(path: &str) -> Self {
        PathBuf::from(path).into()
    }
}

impl Deref for DataPath {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.resolved
    }
}

impl AsRef<Path> for DataPath {
    fn as_ref(&self) -> &Path {
        &self.resolved
    }
}

impl Serialize for DataPath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.written.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for DataPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        PathBuf::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_from_the_config_folder_and_serializes_as_written() {
        let mut path = DataPath::from("data/words4.txt");
        path.resolve(Path::new("/somewhere/else"));
        assert_eq!(&*path, Path::new("/somewhere/else/data/words4.txt"));
        assert_eq!(serde_json::to_string(&path).unwrap(), "\"data/words4.txt\"");
        let mut absolute = DataPath::from("/abs/words.txt");
        absolute.resolve(Path::new("x"));
        assert_eq!(&*absolute, Path::new("/abs/words.txt"));
    }
}
