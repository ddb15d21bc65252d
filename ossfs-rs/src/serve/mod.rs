//! Embedded S3 endpoint (being written).
