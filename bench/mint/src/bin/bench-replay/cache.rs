//! The module's own cache code, compiled from its sources as they are (not a copy): the store
//! interface and the shared-memory store. The paths are relative to this file
//! (bench/mint/src/bin/bench-replay/) and lead to the repository's src/cache/.

#[path = "../../../../../src/cache/store.rs"]
pub(crate) mod store;

#[path = "../../../../../src/cache/shm/mod.rs"]
pub(crate) mod shm;
