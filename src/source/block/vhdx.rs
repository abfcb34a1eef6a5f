//! VHDX (dynamic, any block size) through `vhdx-core`: read-only, no unsafe, checked
//! byte-for-byte against `qemu-img convert` images.

use std::io;
use std::sync::Arc;

use super::{BlockReader, Pooled, Seeker, Store, StoreReader};

pub fn open_store(store: Arc<dyn Store>) -> Result<Box<dyn BlockReader>, String> {
    let reader = |s: &Arc<dyn Store>| -> io::Result<vhdx::VhdxReader> {
        let r = StoreReader::new(s.clone())?;
        vhdx::VhdxReader::open_reader(Box::new(r))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("vhdx: {e}")))
    };
    let r = reader(&store).map_err(|e| e.to_string())?;
    let len = r.virtual_disk_size();
    let open = move || reader(&store).map(Seeker);
    Ok(Box::new(Pooled::new(Seeker(r), len, Box::new(open))))
}
