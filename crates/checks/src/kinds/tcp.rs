//! `tcp`: a connection to host:port opens.

use std::time::Instant;

use crate::definition::TcpTarget;
use crate::guard;
use crate::kinds::{Failure, millis};
use crate::status::Observation;

pub struct TcpProbe {
    host: String,
    port: u16,
}

impl TcpProbe {
    pub fn new(target: &TcpTarget) -> Self {
        let (host, port) = target.address.rsplit_once(':').unwrap_or((&target.address, "0"));
        Self { host: host.trim_matches(['[', ']']).to_string(), port: port.parse().unwrap_or(0) }
    }

    pub async fn run(&self, allow_link_local: bool) -> Result<Observation, Failure> {
        let started = Instant::now();
        let addresses = guard::resolve(&self.host, self.port, allow_link_local).await?;
        let stream = tokio::net::TcpStream::connect(&addresses[..])
            .await
            .map_err(|e| Failure::new(format!("cannot connect to {}:{}: {e}", self.host, self.port)))?;
        let latency = started.elapsed();
        let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
        Ok(Observation::healthy(format!("connected in {:.1} ms", millis(latency)))
            .with_latency(latency)
            .detail("address", peer))
    }
}
