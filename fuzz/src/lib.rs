//! The module's core, compiled for fuzzing (see Cargo.toml), and one entry point per fuzz target
//! in [`harness`]. Nothing here is part of the module.
#![allow(dead_code, unused_imports, unreachable_pub)]

include!(concat!(env!("OUT_DIR"), "/core.rs"));

pub mod harness;
