//! The Octopus sandbox (placeholder until it lands).

use std::sync::Arc;

use crate::sandbox::Kit;

/// The sandbox's routes, nested under its prefix.
pub fn router(_kit: Arc<Kit>) -> axum::Router {
    axum::Router::new()
}
