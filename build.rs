//! Embeds every `patterns/*.toml` rule file in the binary, so that a new secret type is a new
//! data file and no code change. The files are embedded as JSON (parsed here, once): reading
//! hundreds of rules from TOML at every start costs ten times more.
use std::{env, fs, path::Path};

fn main() {
    let dir = Path::new("patterns");
    println!("cargo:rerun-if-changed=patterns");
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("patterns/ directory")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    let mut out = String::from("pub const EMBEDDED_RULE_FILES: &[(&str, &str)] = &[\n");
    for n in &names {
        println!("cargo:rerun-if-changed=patterns/{n}");
        let text = fs::read_to_string(dir.join(n)).expect("rule file");
        let table: toml::Table =
            toml::from_str(&text).unwrap_or_else(|e| panic!("patterns/{n} is not valid TOML: {e}"));
        let json = serde_json::to_string(&table).expect("JSON");
        out.push_str(&format!("    ({n:?}, {json:?}),\n"));
    }
    out.push_str("];\n");
    let dest = Path::new(&env::var("OUT_DIR").unwrap()).join("embedded_rules.rs");
    fs::write(dest, out).unwrap();
}
