//! Logging through httpd's error log, so `LogLevel oauth2:debug` works per module.

use std::ffi::c_int;

use crate::ffi;

pub fn request(r: *mut ffi::request_rec, level: c_int, msg: &str) {
    // SAFETY: r is the live request of the current hook; msg is passed with its length ("%.*s").
    unsafe { ffi::oauth2_log_request(r, level, msg.as_ptr().cast(), msg.len()) }
}

pub fn server(s: *mut ffi::server_rec, level: c_int, msg: &str) {
    // SAFETY: s is the server of the current directive; msg is passed with its length.
    unsafe { ffi::oauth2_log_server(s, level, msg.as_ptr().cast(), msg.len()) }
}
