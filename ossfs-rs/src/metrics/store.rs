//! The metered store: every store request counted in [`METRICS`].
//!
//! [`MeteredStore`] is the one pass-through wrapper of the store layer
//! ([`HookedStore`]) with [`StoreMetrics`] as its hooks, so the REST client
//! stays free of metrics code and this file holds only what is counted:
//! each request by operation and outcome with its latency, the body bytes
//! of successful PUTs, part uploads and appends, and the bytes of every GET
//! body as they arrive.
//!
//! Imports: `super::registry`; `crate::store` (the trait and its hook layer).

use std::time::Duration;

use futures::StreamExt;

use super::registry::{METRICS, Op};
use crate::store::GetObject;
use crate::store::StoreError;
use crate::store::layer::{Call, HookedStore, StoreHooks, StoreOp};

/// An [`ObjectStore`](crate::store::ObjectStore) that records every request
/// in [`METRICS`]: `MeteredStore::new(inner, StoreMetrics)`.
pub type MeteredStore = HookedStore<StoreMetrics>;

/// The hooks that count store requests.
#[derive(Clone, Copy, Debug, Default)]
pub struct StoreMetrics;

/// The `op` label of a store operation.
fn label(op: StoreOp) -> Op {
    match op {
        StoreOp::Head => Op::Head,
        StoreOp::Get => Op::Get,
        StoreOp::Put | StoreOp::Append | StoreOp::PutSymlink => Op::Put,
        StoreOp::ListPage => Op::List,
        StoreOp::Delete | StoreOp::DeleteMultiple => Op::Delete,
        StoreOp::Copy | StoreOp::UploadPartCopy => Op::Copy,
        StoreOp::CreateMultipart
        | StoreOp::UploadPart
        | StoreOp::CompleteMultipart
        | StoreOp::AbortMultipart
        | StoreOp::ListParts => Op::Multipart,
        StoreOp::GetSymlink => Op::Other,
    }
}

impl StoreHooks for StoreMetrics {
    fn after(&self, call: &Call<'_>, outcome: Result<(), &StoreError>, elapsed: Duration) {
        METRICS.request(label(call.op), outcome.is_ok(), elapsed);
        if let (Ok(()), Some(n)) = (outcome, call.body_len) {
            METRICS.written_bytes(n);
        }
    }

    fn got(&self, _call: &Call<'_>, mut got: GetObject) -> GetObject {
        got.body = got
            .body
            .inspect(|chunk| {
                if let Ok(c) = chunk {
                    METRICS.read_bytes(c.len() as u64);
                }
            })
            .boxed();
        got
    }
}
