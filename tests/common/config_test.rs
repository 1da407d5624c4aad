//! `apache2 -t` on a rendered configuration, without starting a server.

use super::httpd::Httpd;
use super::httpd_config::{HttpdConfig, prepare_dir, render};
use super::module_under_test::module_path;
use super::pki::Pki;
use super::sys::{apache_bin, free_port, run_bounded, unique_dir, write_file};
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// Result of `apache2 -t`.
pub(crate) struct ConfigTest {
    pub(crate) ok: bool,
    /// stdout + stderr of `apache2 -t`.
    pub(crate) output: String,
    pub(crate) conf: PathBuf,
    pub(crate) conf_text: String,
    dir: PathBuf,
}

impl Httpd {
    /// Run `apache2 -t` on the configuration that `start` would write. Does not start a server.
    pub(crate) fn config_test(config: HttpdConfig) -> ConfigTest {
        if config.load_oauth2 {
            module_path();
        }
        let dir = unique_dir("conftest");
        let pki = Pki::new(&dir.join("pki"));
        prepare_dir(&dir);
        let conf = dir.join("httpd.conf");
        let conf_text = render(&config, &dir, &pki, free_port(), free_port());
        write_file(&conf, conf_text.as_bytes(), 0o644);
        let out = run_bounded(
            Command::new(apache_bin()).arg("-t").arg("-f").arg(&conf),
            Duration::from_secs(20),
        );
        ConfigTest {
            ok: out.0,
            output: out.1,
            conf,
            conf_text,
            dir,
        }
    }
}

impl ConfigTest {
    /// 1-based line number of the first configuration line containing `needle`.
    pub(crate) fn line_of(&self, needle: &str) -> usize {
        self.conf_text
            .lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("`{needle}` not in the generated config"))
            + 1
    }

    /// The message `apache2 -t` printed for a syntax error on the line holding `needle` (the
    /// output line after `AH00526: Syntax error on line N of FILE:`); `Err` describing what
    /// happened instead (accepted, or an error elsewhere).
    pub(crate) fn syntax_error(&self, needle: &str) -> Result<String, String> {
        if self.ok {
            return Err(format!("apache2 -t accepted it:\n{}", self.output));
        }
        let header = format!(
            "AH00526: Syntax error on line {} of {}:",
            self.line_of(needle),
            self.conf.display()
        );
        let lines: Vec<&str> = self.output.lines().collect();
        match lines.iter().position(|l| l.contains(&header)) {
            Some(i) => Ok(lines.get(i + 1).copied().unwrap_or("").to_string()),
            None => Err(format!("no `{header}` in:\n{}", self.output)),
        }
    }
}

impl Drop for ConfigTest {
    fn drop(&mut self) {
        if !std::thread::panicking() && std::env::var_os("KEEP_HTTPD_DIR").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("harness: kept {}", self.dir.display());
        }
    }
}
