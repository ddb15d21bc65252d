//! `ossfs-rs check`: diagnose credentials, endpoint and bucket before
//! mounting, and the same diagnosis as a mount's preflight.
//!
//! - [`report`]: the three steps (credentials, endpoint, listing) and their
//!   `ok`/`FAIL` lines, [`check`] and the subcommand's [`run`];
//! - [`probe`]: the TCP probe of the endpoint and its advice;
//! - [`diagnose`](mod@diagnose): from a store or credential error to what
//!   is wrong and how to fix it, a pure function.
//!
//! What the checks are run against (the arguments, the endpoint, the
//! inferred provider, region and signature) is the store configuration of
//! the config layer, `config::plan`, which every mount uses too.
//!
//! Imports: `config` (the plan) and `store`.

pub mod diagnose;
pub mod probe;
pub mod report;

pub use diagnose::{Diagnosis, credential_fix, diagnose};
pub use probe::{ProbeError, probe_tcp, unreachable_fix};
pub use report::{check, run};
