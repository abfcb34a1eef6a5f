//! FAT12/16/32 with long names, through `fatfs`.

use super::{Blob, FileScanner, Slice};

pub(super) fn walk<F: FnMut(Blob)>(slice: Slice, files: &mut FileScanner<F>) -> Result<(), String> {
    let fs =
        fatfs::FileSystem::new(slice, fatfs::FsOptions::new()).map_err(|e| format!("fat: {e}"))?;
    let mut dirs = vec![(String::new(), fs.root_dir())];
    while let Some((prefix, dir)) = dirs.pop() {
        for entry in dir.iter() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    files.warn(&format!("{prefix}/"), &e);
                    break;
                }
            };
            let name = entry.file_name();
            if name == "." || name == ".." {
                continue;
            }
            let shown = format!("{prefix}/{name}");
            if entry.is_dir() {
                dirs.push((shown, entry.to_dir()));
            } else {
                let len = entry.len();
                files.file(&shown, len, &mut entry.to_file());
            }
        }
    }
    Ok(())
}
