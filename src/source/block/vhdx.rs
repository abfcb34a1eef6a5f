//! VHDX (dynamic, any block size) through `vhdx-core`: read-only, no unsafe, checked
//! byte-for-byte against `qemu-img convert` images.

use std::io;
use std::path::{Path, PathBuf};

use super::{BlockReader, Pooled, Seeker};

pub fn open(path: &Path) -> Result<Box<dyn BlockReader>, String> {
    let r = vhdx::VhdxReader::open(path).map_err(|e| e.to_string())?;
    let len = r.virtual_disk_size();
    let path: PathBuf = path.to_path_buf();
    let open = move || {
        vhdx::VhdxReader::open(&path)
            .map(Seeker)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("vhdx: {e}")))
    };
    Ok(Box::new(Pooled::new(Seeker(r), len, Box::new(open))))
}
