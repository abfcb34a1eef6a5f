//! FAT12/16/32 with long names, through `fatfs`.

use super::{Blob, FileScanner, Slice};

pub(super) fn walk<F: FnMut(Blob)>(slice: Slice, files: &mut FileScanner<F>) -> Result<(), String> {
    // A volume of N bytes holds at most N/32 directory entries: more, and a corrupt volume's
    // directories loop (a subdirectory that is an ancestor, a cluster chain that comes back),
    // which fatfs does not check. (Found by fuzzing: each turn of such a loop made a longer
    // path, until memory ran out.)
    let budget = slice.size() / 32;
    let mut entries = 0u64;
    let fs =
        fatfs::FileSystem::new(slice, fatfs::FsOptions::new()).map_err(|e| format!("fat: {e}"))?;
    let mut dirs = vec![(String::new(), fs.root_dir())];
    while let Some((prefix, dir)) = dirs.pop() {
        for entry in dir.iter() {
            entries += 1;
            if entries > budget {
                files.warn(
                    &format!("{prefix}/"),
                    &"more directory entries than the volume can hold: its directories loop \
                      (corrupt); the walk stops here",
                );
                return Ok(());
            }
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
