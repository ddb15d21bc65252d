//! Signer: oss_v4 (being written).
