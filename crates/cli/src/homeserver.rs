//! Picks the homeserver connector the `matrix` section asks for.

use std::sync::Arc;

use anyhow::Context;
use mas_config::sections::HomeserverKind;
use mas_matrix::{HomeserverConnection, ReadOnly, SynapseLegacy, SynapseModern};

/// The connection to the configured homeserver.
pub(crate) fn connect(
    config: &mas_config::RootConfig,
) -> anyhow::Result<Arc<dyn HomeserverConnection>> {
    let matrix = &config.matrix;
    let secret = matrix
        .secret()
        .context("matrix: the homeserver's shared secret is needed to reach it")?;
    let server_name = matrix.homeserver.clone();
    let endpoint = matrix.endpoint.clone();
    let modern = || SynapseModern::new(server_name.clone(), endpoint.clone(), secret.clone());
    Ok(match matrix.kind {
        HomeserverKind::Synapse | HomeserverKind::SynapseModern => Arc::new(modern()?),
        HomeserverKind::SynapseLegacy => {
            Arc::new(SynapseLegacy::new(server_name, endpoint, secret)?)
        }
        HomeserverKind::SynapseReadOnly => Arc::new(ReadOnly(modern()?)),
    })
}
