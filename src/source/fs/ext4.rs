//! ext4 (and ext2/3) through `ext4-view`, files and directories opened from their entries by
//! inode.

use super::{Blob, FileScanner, Slice};

/// The inode of an ext4 filesystem's root directory.
const EXT4_ROOT_INODE: u32 = 2;

pub(super) fn walk<F: FnMut(Blob)>(slice: Slice, files: &mut FileScanner<F>) -> Result<(), String> {
    let fs = ext4_view::Ext4::load(Box::new(crate::source::block::ReadAhead::new(slice)))
        .map_err(|e| format!("ext4: {e}"))?;
    // Directories and files are opened from their entries (by inode): `fs.read_dir(path)` and
    // `fs.open(path)` would resolve the path from the root again, reading every directory on the
    // way, entry by entry where it has no htree index.
    // `None` is the root. A directory is walked once: a corrupt or crafted filesystem can link
    // a directory into itself, and its paths would grow without end.
    let mut dirs: Vec<Option<ext4_view::DirEntry>> = vec![None];
    let mut seen = std::collections::HashSet::from([EXT4_ROOT_INODE]);
    while let Some(dir) = dirs.pop() {
        let (shown, entries) = match &dir {
            None => ("/".to_string(), fs.read_dir("/")),
            Some(d) => (d.path().display().to_string(), d.read_dir()),
        };
        let entries = match entries {
            Ok(e) => e,
            Err(e) => {
                files.warn(&shown, &e);
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    files.warn(&shown, &e);
                    continue;
                }
            };
            let name = entry.file_name();
            if name.as_ref() == b"." || name.as_ref() == b".." {
                continue;
            }
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                // Not a second time: a loop in a corrupt directory tree (as the XFS and NTFS
                // walks do; what it holds was walked under its first path).
                if seen.insert(entry.inode()) {
                    dirs.push(Some(entry));
                }
            } else if ft.is_regular_file() {
                let shown = entry.path().display().to_string();
                match entry.open() {
                    Ok(mut f) => {
                        let len = f.metadata().len();
                        files.file(&shown, len, &mut f);
                    }
                    Err(e) => files.warn(&shown, &e),
                }
            }
        }
    }
    Ok(())
}
