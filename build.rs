//! Compiles the C shim (c-shim/) and generates `$OUT_DIR/shim_gen.rs`, the constants Rust shares
//! with C, so that `cargo build` alone produces a loadable `libmod_oauth2.so` and no value is
//! mirrored by hand: every `#define OAUTH2_*` of c-shim/shim.h, and the httpd constants of
//! [`HTTPD_CONSTANTS`] (the module magic number among them), are read back from the C
//! preprocessor with the same headers the shim is compiled against.
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

    generate_constants(&httpd_inc, &apr_inc);

    // ap_* symbols resolve at load time from the httpd binary; APR gets proper NEEDED entries, as apxs does.
    println!("cargo:rustc-link-lib=dylib=apr-1");
    println!("cargo:rustc-link-lib=dylib=aprutil-1");
}

/// httpd's constants that Rust uses, with their Rust types. The values come from the headers.
const HTTPD_CONSTANTS: &[(&str, &str)] = &[
    // The module struct is defined in Rust (a C-defined one is not exported from a cdylib), so
    // Rust needs httpd's magic numbers (ap_mmn.h).
    ("MODULE_MAGIC_NUMBER_MAJOR", "c_int"),
    ("MODULE_MAGIC_NUMBER_MINOR", "c_int"),
    ("MODULE_MAGIC_COOKIE", "c_ulong"),
    // Hook results (httpd.h).
    ("OK", "c_int"),
    ("DECLINED", "c_int"),
    ("HTTP_INTERNAL_SERVER_ERROR", "c_int"),
    ("HTTP_METHOD_NOT_ALLOWED", "c_int"),
    // Log levels (http_log.h).
    ("APLOG_ERR", "c_int"),
    ("APLOG_WARNING", "c_int"),
    ("APLOG_INFO", "c_int"),
    ("APLOG_DEBUG", "c_int"),
];

/// The names of shim.h's object-like `#define OAUTH2_<NAME> <value>` lines (not the include guard,
/// not function-like macros): each becomes a `c_int` constant of the same name.
fn shim_defines(header: &str) -> Vec<String> {
    header
        .lines()
        .filter_map(|l| {
            let rest = l.trim_start().strip_prefix('#')?.trim_start();
            let rest = rest.strip_prefix("define")?;
            let mut words = rest.split_whitespace();
            let name = words.next()?;
            let has_value = words.next().is_some_and(|w| !w.starts_with("/*"));
            (name.starts_with("OAUTH2_")
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                && has_value)
                .then(|| name.to_string())
        })
        .collect()
}

/// A preprocessed integer expression as Rust: C's integer suffixes (`U`, `L`, `UL`) dropped; any
/// token other than an integer literal, parentheses and `-`, `+`, `|`, `<<`, `~` (a name the
/// headers do not define, a cast) is refused, so a missing definition fails the build here.
fn rust_value(name: &str, c: &str) -> String {
    let mut out = String::new();
    let mut chars = c.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch.is_ascii_digit() {
            let mut lit = String::from(ch);
            while let Some(&n) = chars.peek().filter(|n| n.is_ascii_alphanumeric()) {
                lit.push(n);
                chars.next();
            }
            let lit = lit.trim_end_matches(['u', 'U', 'l', 'L']);
            let ok = match lit.strip_prefix("0x").or_else(|| lit.strip_prefix("0X")) {
                Some(hex) => !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()),
                None => lit.bytes().all(|b| b.is_ascii_digit()),
            };
            assert!(ok, "{name}: `{c}` is not an integer constant");
            out.push_str(lit);
        } else if "()-+|<~ ".contains(ch) {
            out.push(if ch == '~' { '!' } else { ch });
        } else {
            panic!("{name}: `{c}` is not an integer constant (is it defined by the headers?)");
        }
    }
    let out = out.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(!out.is_empty(), "{name} has no value");
    out
}

fn generate_constants(httpd_inc: &str, apr_inc: &str) {
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let header = fs::read_to_string("c-shim/shim.h").expect("c-shim/shim.h");
    let shim: Vec<(String, &str)> = shim_defines(&header)
        .into_iter()
        .map(|n| (n, "c_int"))
        .collect();
    let all: Vec<(String, &str)> = HTTPD_CONSTANTS
        .iter()
        .map(|&(n, t)| (n.to_string(), t))
        .chain(shim)
        .collect();
    // Each line `OAUTH2_GEN "NAME" <NAME>`: the quoted name survives preprocessing, the bare one
    // becomes its value.
    let mut probe = String::from(
        "/* generated by build.rs from c-shim/shim.h */\n\
         #include \"httpd.h\"\n#include \"http_log.h\"\n#include \"shim.h\"\n",
    );
    for (name, _) in &all {
        probe.push_str(&format!("OAUTH2_GEN \"{name}\" {name}\n"));
    }
    let probe_path = out.join("shim_gen.c");
    fs::write(&probe_path, probe).expect("write shim_gen.c");
    let expanded = cc::Build::new()
        .include(httpd_inc)
        .include(apr_inc)
        .include("c-shim")
        .define("LINUX", None)
        .define("_REENTRANT", None)
        .define("_GNU_SOURCE", None)
        .file(&probe_path)
        .expand();
    // An expansion may be split over lines (with line markers between them, e.g. when a value
    // comes from a system header): read the probe lines as one text, without the markers.
    let expanded: String = String::from_utf8_lossy(&expanded)
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ");
    let values: Vec<(&str, &str)> = expanded
        .split("OAUTH2_GEN \"")
        .skip(1)
        .filter_map(|chunk| chunk.split_once('"'))
        .collect();
    let mut rust = String::from(
        "// Generated by build.rs from c-shim/shim.h and httpd's headers: do not edit.\n\
         use std::ffi::{c_int, c_ulong};\n",
    );
    for (name, ty) in &all {
        let value = values
            .iter()
            .find_map(|&(n, v)| (n == name).then_some(v))
            .unwrap_or_else(|| panic!("{name} not found in the preprocessed shim_gen.c"));
        rust.push_str(&format!(
            "pub(crate) const {name}: {ty} = {};\n",
            rust_value(name, value)
        ));
    }
    fs::write(out.join("shim_gen.rs"), rust).expect("write shim_gen.rs");
}
