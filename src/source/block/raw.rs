//! A raw image file or block device: positioned reads (`pread`), holes of sparse files skipped
//! with `lseek(SEEK_DATA/SEEK_HOLE)`, and a read-only map for the raw pass.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;

use super::BlockReader;

pub struct Raw {
    f: File,
    len: u64,
}

impl Raw {
    pub fn open(path: &Path) -> io::Result<Raw> {
        let f = File::open(path)?;
        let len = size(&f)?;
        Ok(Raw { f, len })
    }
}

impl BlockReader for Raw {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        self.f.read_at(buf, off)
    }
    fn data(&self, pos: u64, end: u64) -> (u64, u64) {
        next_data(&self.f, pos, end)
    }
    fn map(&self) -> Option<memmap2::Mmap> {
        if self.len == 0 || !self.f.metadata().ok()?.file_type().is_file() {
            return None;
        }
        // SAFETY: read-only map of a file that is not expected to change (see `Disk::map`).
        let map = unsafe { memmap2::MmapOptions::new().map(&self.f) }.ok()?;
        if map.len() as u64 != self.len {
            return None;
        }
        let _ = map.advise(memmap2::Advice::Sequential);
        Some(map)
    }
}

/// Size of a regular file or block device.
pub(super) fn size(f: &File) -> io::Result<u64> {
    let m = f.metadata()?;
    if m.file_type().is_block_device() {
        let mut f = f;
        f.seek(SeekFrom::End(0))
    } else {
        Ok(m.len())
    }
}

/// The next range holding data at or after `pos` (before `end`), skipping holes. Where the
/// filesystem cannot say, everything is data.
fn next_data(f: &File, pos: u64, end: u64) -> (u64, u64) {
    let fd = f.as_raw_fd();
    // SAFETY: lseek on a descriptor this File owns; only the offset changes, and every read
    // uses pread, which ignores it.
    let start = unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_DATA) };
    if start < 0 {
        return match io::Error::last_os_error().raw_os_error() {
            Some(libc::ENXIO) => (end, end), // no data after pos
            _ => (pos, end),                 // not supported: read it all
        };
    }
    let start = (start as u64).min(end);
    // SAFETY: as above.
    let hole = unsafe { libc::lseek(fd, start as libc::off_t, libc::SEEK_HOLE) };
    let stop = if hole < 0 {
        end
    } else {
        (hole as u64).min(end)
    };
    (start, stop.max(start))
}
