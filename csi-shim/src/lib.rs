//! csi-os: the CSI plugin (driver `csi.os`) for ossfs-rs volumes.
//!
//! A volume is a prefix of a bucket, mounted on each node by one
//! `ossfs-rs` daemon per volume that outlives the plugin process. Modules:
//! - [`proto`]: the CSI spec, generated at build time;
//! - [`server`]: command line, startup (re-adoption) and the socket;
//! - [`identity`], [`controller`], [`node`]: the three services;
//! - [`plugin`]: shared state, capability checks, RPC logging;
//! - [`volume`]: volume ids, StorageClass parameters, option validation;
//! - [`secrets`]: the os-csi Secret keys, kept out of `Debug`;
//! - [`store`]: creating and deleting a volume's prefix in the bucket;
//! - [`launcher`]: starting and stopping daemons, credential hand-over;
//! - [`keeper`]: a copy of each volume's FUSE fd, and restarting a volume's
//!   dead daemon on it;
//! - [`mounts`]: mount table, bind mounts, unmounts;
//! - [`paths`]: validation of every path from an RPC;
//! - [`state`]: per-volume records in the state directory;
//! - [`error`]: the error type and its mapping to gRPC statuses.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod controller;
pub mod error;
pub mod identity;
pub mod keeper;
pub mod launcher;
pub mod mounts;
pub mod node;
pub mod paths;
pub mod plugin;
pub mod secrets;
pub mod server;
pub mod state;
pub mod store;
pub mod volume;

pub mod proto {
    //! The CSI spec v1.12 (`csi.v1`), generated at build time from the
    //! vendored `proto/csi.proto` (Apache-2.0, container-storage-interface/spec).
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("csi.v1");
}
