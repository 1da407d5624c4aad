//! Logging through httpd's error log, so `LogLevel oauth2:debug` works per module.

use std::ffi::c_int;

use crate::ffi;

pub(crate) fn request(r: *mut ffi::request_rec, level: c_int, msg: &str) {
    // SAFETY: r is the live request of the current hook; msg is passed with its length ("%.*s").
    unsafe { ffi::oauth2_log_request(r, level, msg.as_ptr().cast(), msg.len()) }
}

pub(crate) fn server(s: *mut ffi::server_rec, level: c_int, msg: &str) {
    // SAFETY: s is the server of the current directive; msg is passed with its length.
    unsafe { ffi::oauth2_log_server(s, level, msg.as_ptr().cast(), msg.len()) }
}

/// The sink for [`crate::logsink`]: lines about no particular request go to the main error log.
pub(crate) fn process(level: crate::logsink::Level, msg: &str) {
    use crate::logsink::Level;
    let level = match level {
        Level::Error => ffi::APLOG_ERR,
        Level::Warn => ffi::APLOG_WARNING,
        Level::Debug => ffi::APLOG_DEBUG,
    };
    // SAFETY: msg is passed with its length; ap_server_conf is set once httpd has read its config.
    unsafe { ffi::oauth2_log_process(level, msg.as_ptr().cast(), msg.len()) }
}
