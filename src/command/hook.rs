//! `keyhound install-hook`.

use std::path::Path;

use anyhow::{Context, Result};

/// The first lines of every hook keyhound writes: how it knows a hook is its own.
const HOOK_MARKER: &str = "# keyhound pre-commit hook";

/// `keyhound install-hook`: a pre-commit hook running `keyhound git --staged`.
pub fn run(repo: &Path, force: bool) -> Result<u8> {
    let repo = crate::source::git::open(repo)?;
    let dir = crate::source::git::hooks_dir(&repo)?;
    let hook = dir.join("pre-commit");
    if let Ok(existing) = std::fs::read_to_string(&hook) {
        if !existing.contains(HOOK_MARKER) && !force {
            anyhow::bail!(
                "{} exists and was not written by keyhound; add `keyhound git --staged` to it, \
                 or pass --force to replace it",
                hook.display()
            );
        }
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let exe = std::env::current_exe()?;
    let script = format!(
        "#!/bin/sh\n{HOOK_MARKER} (keyhound install-hook): blocks commits that add secrets.\n\
         # Skip once with `git commit --no-verify`.\n\
         if command -v keyhound >/dev/null 2>&1; then exec keyhound git --staged; fi\n\
         exec '{}' git --staged\n",
        exe.display()
    );
    std::fs::write(&hook, script).with_context(|| format!("cannot write {}", hook.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))?;
    }
    println!("installed {}", hook.display());
    Ok(0)
}
