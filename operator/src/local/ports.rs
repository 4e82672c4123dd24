//! Ports of local members. Member `<cluster>-<i>` of a cluster without
//! pools listens on base+i, as before pools; a member of a declared pool,
//! whose platform index is a hash, gets the lowest free offset. Offsets are
//! kept in `<root>/<cluster>-ports.json`, written before a member first
//! starts, so a member keeps its port while it exists, across operator
//! restarts, whatever happens to the spec's pools.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::driver::PlatformError;

/// Member offsets from the base port, by member id.
#[derive(Debug)]
pub struct Ports {
    path: PathBuf,
    offsets: BTreeMap<String, u16>,
    /// Offsets handed out but not yet saved.
    unsaved: bool,
}

impl Ports {
    /// The table saved at `path`, or an empty one when there is none.
    ///
    /// # Errors
    /// When the file exists but cannot be read or parsed.
    pub fn open(path: &Path) -> Result<Self, PlatformError> {
        let offsets = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|error| PlatformError::Io {
                action: format!("parse {}", path.display()),
                source: std::io::Error::other(error),
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => {
                return Err(PlatformError::Io {
                    action: format!("read {}", path.display()),
                    source,
                });
            }
        };
        Ok(Self {
            path: path.to_owned(),
            offsets,
            unsaved: false,
        })
    }

    /// The offset of member `id`: the one it has, else `preferred` when no
    /// other member has it, else the lowest free one.
    pub fn offset(&mut self, id: &str, preferred: Option<u16>) -> u16 {
        if let Some(&offset) = self.offsets.get(id) {
            return offset;
        }
        let taken = |offset: u16| self.offsets.values().any(|&o| o == offset);
        let offset = match preferred {
            Some(offset) if !taken(offset) => offset,
            _ => (0..=u16::MAX).find(|&o| !taken(o)).unwrap_or(u16::MAX),
        };
        self.offsets.insert(id.to_owned(), offset);
        self.unsaved = true;
        offset
    }

    /// Frees the offset of member `id`, which is gone for good.
    pub fn release(&mut self, id: &str) {
        self.unsaved |= self.offsets.remove(id).is_some();
    }

    /// Writes the table if it changed since the last save.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn save(&mut self) -> Result<(), PlatformError> {
        if !self.unsaved {
            return Ok(());
        }
        let text = serde_json::to_vec_pretty(&self.offsets).expect("a map of offsets serializes");
        let partial = self.path.with_extension("json.new");
        std::fs::write(&partial, text)
            .and_then(|()| std::fs::rename(&partial, &self.path))
            .map_err(|source| PlatformError::Io {
                action: format!("write {}", self.path.display()),
                source,
            })?;
        self.unsaved = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_keep_their_port_and_pool_members_fill_the_gaps() {
        let dir = tempfile::tempdir().expect("a directory");
        let path = dir.path().join("demo-ports.json");
        let mut ports = Ports::open(&path).expect("no table yet");
        assert_eq!(ports.offset("demo-0", Some(0)), 0);
        assert_eq!(ports.offset("demo-2", Some(2)), 2);
        assert_eq!(ports.offset("demo-big-0", None), 1);
        assert_eq!(ports.offset("demo-big-1", None), 3);
        // Taken: the implicit member gets the next free offset.
        assert_eq!(ports.offset("demo-1", Some(1)), 4);
        ports.save().expect("saved");

        // A restarted operator reads the same offsets, whatever it asks first.
        let mut again = Ports::open(&path).expect("the table");
        assert_eq!(again.offset("demo-big-1", None), 3);
        assert_eq!(again.offset("demo-big-0", None), 1);
        again.release("demo-big-0");
        assert_eq!(again.offset("demo-small-0", None), 1);
    }

    #[test]
    fn a_corrupt_table_is_an_error() {
        let dir = tempfile::tempdir().expect("a directory");
        let path = dir.path().join("demo-ports.json");
        std::fs::write(&path, "{not json").expect("written");
        assert!(Ports::open(&path).is_err());
    }
}
