//! The raw interface to httpd: the exported `oauth2_module` struct and the C shim's functions
//! (c-shim/shim.c, c-shim/shim.h). Only src/apache/ and src/entry.rs use these.
#![allow(non_camel_case_types, non_upper_case_globals)]

use std::ffi::{c_char, c_int, c_ulong, c_void};

mod mmn {
    include!(concat!(env!("OUT_DIR"), "/mmn.rs"));
}

/// Opaque httpd/APR types: Rust only ever holds pointers to them.
#[repr(C)]
pub struct request_rec {
    _opaque: [u8; 0],
}
#[repr(C)]
pub struct server_rec {
    _opaque: [u8; 0],
}
#[repr(C)]
pub struct apr_pool_t {
    _opaque: [u8; 0],
}
#[repr(C)]
pub struct command_rec {
    _opaque: [u8; 0],
}

pub const OK: c_int = 0;
pub const DECLINED: c_int = -1;
pub const HTTP_INTERNAL_SERVER_ERROR: c_int = 500;

pub const APLOG_ERR: c_int = 3;
pub const APLOG_WARNING: c_int = 4;
pub const APLOG_INFO: c_int = 6;
pub const APLOG_DEBUG: c_int = 7;

pub const OAUTH2_MODE_OPENIDC: c_int = 2;

pub const OAUTH2_CMD_TOKEN_VERIFY: c_int = 1;
pub const OAUTH2_CMD_ACCEPT_TOKEN_IN: c_int = 2;
pub const OAUTH2_CMD_TARGET_PASS: c_int = 3;
pub const OAUTH2_CMD_CRYPTO_PASSPHRASE: c_int = 4;
pub const OAUTH2_CMD_CACHE: c_int = 5;

/// Where a directive was written (c-shim/shim.h `oauth2_cmd_site`).
#[repr(C)]
pub struct oauth2_cmd_site {
    pub pool: *mut apr_pool_t,
    pub server: *mut server_rec,
    pub file: *const c_char,
    pub line: std::ffi::c_uint,
}

unsafe extern "C" {
    pub fn oauth2_pstrmemdup(p: *mut apr_pool_t, s: *const c_char, len: usize) -> *const c_char;
    pub fn oauth2_pool_cleanup_register(
        p: *mut apr_pool_t,
        data: *mut c_void,
        cleanup: unsafe extern "C" fn(*mut c_void) -> c_int,
    );
    pub fn oauth2_log_request(r: *mut request_rec, level: c_int, msg: *const c_char, len: usize);
    pub fn oauth2_log_enabled(r: *mut request_rec, level: c_int) -> c_int;
    pub fn oauth2_log_process(level: c_int, msg: *const c_char, len: usize);
    pub fn oauth2_log_server(s: *mut server_rec, level: c_int, msg: *const c_char, len: usize);
    pub fn oauth2_header_in_get(r: *mut request_rec, name: *const c_char) -> *const c_char;
    pub fn oauth2_headers_in_count(r: *mut request_rec) -> c_int;
    pub fn oauth2_headers_in_key(r: *mut request_rec, i: c_int) -> *const c_char;
    pub fn oauth2_header_in_unset(r: *mut request_rec, name: *const c_char, len: usize);
    pub fn oauth2_header_in_set(
        r: *mut request_rec,
        name: *const c_char,
        nlen: usize,
        value: *const c_char,
        vlen: usize,
    );
    pub fn oauth2_pairs_set(
        r: *mut request_rec,
        text: *const c_char,
        len: usize,
        offsets: *const usize,
        n: usize,
        headers: c_int,
        envvars: c_int,
        fresh_prefix_len: usize,
    );
    pub fn oauth2_env_get(r: *mut request_rec, name: *const c_char) -> *const c_char;
    pub fn oauth2_env_unset(r: *mut request_rec, name: *const c_char);
    pub fn oauth2_method(r: *mut request_rec) -> *const c_char;
    pub fn oauth2_args(r: *mut request_rec) -> *const c_char;
    pub fn oauth2_args_set(r: *mut request_rec, args: *const c_char, len: usize);
    pub fn oauth2_body_read(
        r: *mut request_rec,
        limit: usize,
        data: *mut *const c_char,
        len: *mut usize,
    ) -> c_int;
    pub fn oauth2_body_replace(r: *mut request_rec, data: *const c_char, len: usize);
    pub fn oauth2_request_claims_set(
        r: *mut request_rec,
        claims: *mut c_void,
        release: unsafe extern "C" fn(*mut c_void) -> c_int,
    );
    pub fn oauth2_request_claims_get(r: *mut request_rec) -> *const c_void;
    pub fn oauth2_user(r: *mut request_rec) -> *const c_char;
    pub fn oauth2_env_set(
        r: *mut request_rec,
        name: *const c_char,
        nlen: usize,
        value: *const c_char,
        vlen: usize,
    );
    pub fn oauth2_err_header_add(
        r: *mut request_rec,
        name: *const c_char,
        value: *const c_char,
        vlen: usize,
    );
    pub fn oauth2_set_user(r: *mut request_rec, user: *const c_char, len: usize);
    pub fn oauth2_auth_name(r: *mut request_rec) -> *const c_char;
    pub fn oauth2_derived_from_user(r: *mut request_rec) -> *const c_char;
    pub fn oauth2_inherit_user(r: *mut request_rec);
    pub fn oauth2_client_cert_pem(r: *mut request_rec) -> *const c_char;
    pub fn oauth2_conn_memo_get(
        r: *mut request_rec,
        pem: *mut *const c_char,
        thumbprint: *mut *const c_char,
    );
    pub fn oauth2_conn_memo_set(
        r: *mut request_rec,
        pem: *const c_char,
        thumbprint: *const c_char,
        tlen: usize,
    ) -> *const c_char;
    /// This connection's token memo: made by `create` on first use, released with the connection.
    pub fn oauth2_conn_token_memo(
        r: *mut request_rec,
        create: unsafe extern "C" fn() -> *mut c_void,
        release: unsafe extern "C" fn(*mut c_void) -> c_int,
    ) -> *mut c_void;

    // Defined in the shim, referenced only by the module struct below.
    static oauth2_shim_cmds: command_rec; // really `const command_rec[]`; only its address is used
    fn oauth2_shim_create_dir_cfg(p: *mut apr_pool_t, dir: *mut c_char) -> *mut c_void;
    fn oauth2_shim_merge_dir_cfg(
        p: *mut apr_pool_t,
        base: *mut c_void,
        add: *mut c_void,
    ) -> *mut c_void;
    fn oauth2_shim_register_hooks(p: *mut apr_pool_t);
}

/// httpd's `module` (http_config.h, `module_struct`), field for field.
#[repr(C)]
pub struct Module {
    version: c_int,
    minor_version: c_int,
    module_index: c_int,
    name: *const c_char,
    dynamic_load_handle: *mut c_void,
    next: *mut Module,
    magic: c_ulong,
    rewrite_args: Option<unsafe extern "C" fn(*mut c_void)>,
    create_dir_config: Option<unsafe extern "C" fn(*mut apr_pool_t, *mut c_char) -> *mut c_void>,
    merge_dir_config:
        Option<unsafe extern "C" fn(*mut apr_pool_t, *mut c_void, *mut c_void) -> *mut c_void>,
    create_server_config: Option<unsafe extern "C" fn(*mut apr_pool_t, *mut c_void) -> *mut c_void>,
    merge_server_config:
        Option<unsafe extern "C" fn(*mut apr_pool_t, *mut c_void, *mut c_void) -> *mut c_void>,
    cmds: *const command_rec,
    register_hooks: Option<unsafe extern "C" fn(*mut apr_pool_t)>,
    flags: c_int,
}

/// `LoadModule oauth2_module .../mod_oauth2.so` looks this symbol up. It is defined in Rust because
/// rustc does not export a C-defined data symbol from a cdylib. httpd writes `module_index`, `next`
/// and `dynamic_load_handle` at load time, hence `static mut`.
#[unsafe(no_mangle)]
pub static mut oauth2_module: Module = Module {
    version: mmn::MODULE_MAGIC_NUMBER_MAJOR,
    minor_version: mmn::MODULE_MAGIC_NUMBER_MINOR,
    module_index: -1,
    name: c"mod_oauth2.c".as_ptr(),
    dynamic_load_handle: std::ptr::null_mut(),
    next: std::ptr::null_mut(),
    magic: mmn::MODULE_MAGIC_COOKIE as c_ulong,
    rewrite_args: None,
    create_dir_config: Some(oauth2_shim_create_dir_cfg),
    merge_dir_config: Some(oauth2_shim_merge_dir_cfg),
    create_server_config: None,
    merge_server_config: None,
    cmds: &raw const oauth2_shim_cmds,
    register_hooks: Some(oauth2_shim_register_hooks),
    flags: 0,
};
