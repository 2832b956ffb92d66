//! Tower layers: [`AuthLayer`] (makes crudauth available to its extractors).

mod auth;

pub use auth::{AuthLayer, AuthService};
pub(crate) use auth::{Outcome, RequestAuth, RequestState};
