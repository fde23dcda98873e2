//! `state_store`: hubmon's own state store answers, and its connection pool is not exhausted.

use std::time::Instant;

use hubmon_state::StateStore;

use crate::kinds::{Failure, chain, millis};
use crate::status::Observation;

pub async fn run(store: &dyn StateStore) -> Result<Observation, Failure> {
    let started = Instant::now();
    store
        .ping()
        .await
        .map_err(|e| Failure::new(format!("the {} state store does not answer: {}", store.backend(), chain(&e))))?;
    let latency = started.elapsed();
    let pool = store.pool_usage();
    let in_use = pool.size.saturating_sub(pool.idle);
    let mut observation = Observation::healthy(format!(
        "{} answered in {:.1} ms; {in_use} of {} connections in use",
        store.backend(),
        millis(latency),
        pool.max
    ))
    .with_latency(latency)
    .detail("backend", store.backend())
    .detail("pool_size", pool.size)
    .detail("pool_idle", pool.idle)
    .detail("pool_in_use", in_use)
    .detail("pool_max", pool.max);
    if pool.max > 0 && in_use >= pool.max {
        observation.degrade(format!("connection pool exhausted: {in_use} of {} in use", pool.max));
    }
    Ok(observation)
}
