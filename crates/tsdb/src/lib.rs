//! hubmon's built-in time-series store (being written).
pub mod chunk;
