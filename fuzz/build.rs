//! Generates `$OUT_DIR/core.rs`: one `#[path] mod` per module that ../src/lib.rs declares, except
//! those behind a `#[cfg(...)]` (the Apache layer, which needs httpd's symbols, and test-only
//! features). Modules the module adds later are picked up without editing this crate.
use std::{env, fs, path::PathBuf};

fn main() {
    let src = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("../src");
    let src = src.canonicalize().expect("../src");
    let lib = fs::read_to_string(src.join("lib.rs")).expect("../src/lib.rs");
    println!("cargo:rerun-if-changed={}", src.join("lib.rs").display());
    let mut out = String::new();
    let mut apache_only = false;
    for line in lib.lines().map(str::trim) {
        if line.starts_with("#[cfg(") {
            apache_only = true;
            continue;
        }
        let name = line
            .strip_prefix("mod ")
            .or_else(|| line.strip_prefix("pub(crate) mod "))
            .and_then(|r| r.strip_suffix(';'));
        if let Some(name) = name {
            if !apache_only {
                let file = src.join(format!("{name}.rs"));
                let path = if file.exists() {
                    file
                } else {
                    src.join(name).join("mod.rs")
                };
                out.push_str(&format!(
                    "#[path = {:?}]\nmod {name};\n",
                    path.display().to_string()
                ));
            }
        }
        if !line.starts_with("#[") {
            apache_only = false;
        }
    }
    let dest = PathBuf::from(env::var("OUT_DIR").unwrap()).join("core.rs");
    fs::write(dest, out).expect("write core.rs");
}
