//! Signer: oss_v1 (being written).
