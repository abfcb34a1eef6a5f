//! NTFS through the `ntfs` crate: the unnamed data stream of every file; `$` metadata files
//! and alternate streams are left to the raw pass.

use std::io::{self, Read, Seek, SeekFrom};

use super::{Blob, FileScanner, Slice};

/// The volume as the ntfs crate reads it. The crate panics on any error met inside one of its
/// structures (ntfs 0.4.0 expects bare I/O errors from binrw, which wraps those met inside a
/// structure: a volume cut short panicked it; found by fuzzing). So reads here never fail:
/// past the end of the volume, or where the disk cannot be read, they give zeros, which the
/// crate's own checks then reject; the first read error is kept to be named.
struct Volume {
    slice: Slice,
    pos: u64,
    error: Option<io::Error>,
}

impl Read for Volume {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.slice.read_at(buf, self.pos) {
            Ok(n) => n,
            Err(e) => {
                self.error.get_or_insert(e);
                0
            }
        };
        buf[n..].fill(0);
        self.pos = self.pos.saturating_add(buf.len() as u64);
        Ok(buf.len())
    }
}

impl Seek for Volume {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = crate::source::block::seek_to(self.slice.size(), self.pos, to)?;
        Ok(self.pos)
    }
}

pub(super) fn walk<F: FnMut(Blob)>(slice: Slice, files: &mut FileScanner<F>) -> Result<(), String> {
    let mut volume = Volume {
        slice,
        pos: 0,
        error: None,
    };
    let r = walk_volume(&mut volume, files);
    match volume.error {
        Some(e) => Err(format!("ntfs: reading the volume: {e}")),
        None => r,
    }
}

fn walk_volume<F: FnMut(Blob)>(fs: &mut Volume, files: &mut FileScanner<F>) -> Result<(), String> {
    use ::ntfs::indexes::NtfsFileNameIndex;
    use ::ntfs::structured_values::NtfsFileNamespace;
    let mut ntfs = ::ntfs::Ntfs::new(fs).map_err(|e| format!("ntfs: {e}"))?;
    ntfs.read_upcase_table(fs)
        .map_err(|e| format!("ntfs: upcase table: {e}"))?;
    let root = ntfs.root_directory(fs).map_err(|e| format!("ntfs: {e}"))?;
    let mut seen = std::collections::HashSet::from([root.file_record_number()]);
    let mut dirs = vec![(String::new(), root)];
    while let Some((prefix, dir)) = dirs.pop() {
        let index = match dir.directory_index(fs) {
            Ok(i) => i,
            Err(e) => {
                files.warn(&format!("{prefix}/"), &e);
                continue;
            }
        };
        let mut entries = index.entries();
        while let Some(entry) = entries.next(fs) {
            let entry: ::ntfs::NtfsIndexEntry<NtfsFileNameIndex> = match entry {
                Ok(e) => e,
                Err(e) => {
                    files.warn(&format!("{prefix}/"), &e);
                    break;
                }
            };
            let Some(Ok(name)) = entry.key() else {
                continue;
            };
            // Each file is listed under its long name and, often, its 8.3 name too.
            if name.namespace() == NtfsFileNamespace::Dos {
                continue;
            }
            let n = name.name().to_string_lossy();
            // The metadata files ($MFT, $LogFile…) hold no user data.
            if n == "." || (prefix.is_empty() && n.starts_with('$')) {
                continue;
            }
            let number = entry.file_reference().file_record_number();
            if !seen.insert(number) {
                continue; // a hard link, or a loop in a corrupt index
            }
            let shown = format!("{prefix}/{n}");
            let file = match entry.to_file(&ntfs, fs) {
                Ok(f) => f,
                Err(e) => {
                    files.warn(&shown, &e);
                    continue;
                }
            };
            if name.is_directory() {
                dirs.push((shown, file));
                continue;
            }
            // The unnamed $DATA stream (alternate streams are left to the raw pass).
            let item = match file.data(fs, "") {
                None => continue,
                Some(Ok(item)) => item,
                Some(Err(e)) => {
                    files.warn(&shown, &e);
                    continue;
                }
            };
            match item.to_attribute().and_then(|a| a.value(fs)) {
                Ok(v) => {
                    let len = v.len();
                    files.file(&shown, len, &mut v.attach(fs));
                }
                Err(e) => files.warn(&shown, &e),
            }
        }
    }
    Ok(())
}
