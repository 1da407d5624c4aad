//! Compiles the C shim (c-shim/) and extracts httpd's module magic numbers, so that `cargo build`
//! alone produces a loadable `libmod_oauth2.so`.
//!
//! Include directories: env override first (`HTTPD_INCLUDE_DIR`, `APR_INCLUDE_DIR`), then `apxs -q`
//! (`APXS` names the apxs binary), then pkg-config for APR, then Debian's defaults.
use std::{env, fs, path::PathBuf, process::Command};

fn query(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    for v in ["APXS", "HTTPD_INCLUDE_DIR", "APR_INCLUDE_DIR"] {
        println!("cargo:rerun-if-env-changed={v}");
    }
    println!("cargo:rerun-if-changed=c-shim");
    let apxs = env::var("APXS").unwrap_or_else(|_| "apxs".into());
    let httpd_inc = env::var("HTTPD_INCLUDE_DIR")
        .ok()
        .or_else(|| query(&apxs, &["-q", "INCLUDEDIR"]))
        .unwrap_or_else(|| "/usr/include/apache2".into());
    let apr_inc = env::var("APR_INCLUDE_DIR")
        .ok()
        .or_else(|| query(&apxs, &["-q", "APR_INCLUDEDIR"]))
        .or_else(|| query("pkg-config", &["--variable=includedir", "apr-1"]))
        .unwrap_or_else(|| "/usr/include/apr-1.0".into());
    if !PathBuf::from(&httpd_inc).join("httpd.h").exists() {
        panic!(
            "httpd.h not found in {httpd_inc}: install the Apache development headers \
             (Debian/Ubuntu: apt-get install apache2-dev) or set HTTPD_INCLUDE_DIR"
        );
    }

    let mut shim = cc::Build::new();
    shim.include(&httpd_inc)
        .include(&apr_inc)
        .define("LINUX", None)
        .define("_REENTRANT", None)
        .define("_GNU_SOURCE", None)
        .warnings(true)
        .extra_warnings(true)
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-missing-field-initializers");
    let mut sources: Vec<PathBuf> = fs::read_dir("c-shim")
        .expect("c-shim/ directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .collect();
    sources.sort(); // reproducible object order
    shim.files(&sources).compile("oauth2_shim");

    // The module struct is defined in Rust (a C-defined one would not be exported from a cdylib),
    // so Rust needs httpd's magic numbers: preprocess c-shim/mmn.h and read the expanded tokens.
    let mut pre = cc::Build::new();
    pre.include(&httpd_inc)
        .include(&apr_inc)
        .file("c-shim/mmn.h");
    let expanded = String::from_utf8_lossy(&pre.expand()).to_string();
    let value = |tag: &str| -> String {
        expanded
            .lines()
            .find_map(|l| l.trim().strip_prefix(tag).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("{tag} not found in preprocessed ap_mmn.h"))
    };
    let major = value("OAUTH2_MMN_MAJOR");
    let minor = value("OAUTH2_MMN_MINOR");
    let cookie = value("OAUTH2_MMN_COOKIE");
    let cookie = cookie.trim_end_matches("UL").trim_end_matches('L');
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    fs::write(
        out.join("mmn.rs"),
        format!(
            "pub const MODULE_MAGIC_NUMBER_MAJOR: i32 = {major};\n\
             pub const MODULE_MAGIC_NUMBER_MINOR: i32 = {minor};\n\
             pub const MODULE_MAGIC_COOKIE: u64 = {cookie};\n"
        ),
    )
    .expect("write mmn.rs");

    // ap_* symbols resolve at load time from the httpd binary; APR gets proper NEEDED entries, as apxs does.
    println!("cargo:rustc-link-lib=dylib=apr-1");
    println!("cargo:rustc-link-lib=dylib=aprutil-1");
}
