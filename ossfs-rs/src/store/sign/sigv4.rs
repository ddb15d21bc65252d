//! Signer: sigv4 (being written).
