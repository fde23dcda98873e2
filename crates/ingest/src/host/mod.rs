//! Host collector (being written).
