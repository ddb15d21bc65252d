//! `csi-os`: the CSI plugin (driver `csi.os`). Being written.
fn main() {}
