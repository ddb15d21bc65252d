//! The REST client (being written).

/// Client settings.
#[derive(Debug, Clone, Default)]
pub struct ClientConfig {}

/// The REST client.
#[derive(Debug)]
pub struct RestClient {}
