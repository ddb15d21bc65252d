//! Signer: cos (being written).
