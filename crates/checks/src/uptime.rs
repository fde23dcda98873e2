//! Uptime maths over the status timeline: time-weighted, not a count of runs, so a check run
//! every 10 s and one run every 5 min are comparable, and a change of interval does not skew
//! the figure.
//!
//! Up is healthy or degraded (the dependency answered). Time with an unknown status (before
//! the first result, while hubmon was stopped and the check was reset) is left out of both
//! sides: uptime is over the time the status was known.

use hubmon_model::{HealthStatus, Timestamp};

/// One point of the timeline: from `at` on, the status was `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub at: Timestamp,
    pub status: HealthStatus,
}

/// Percent of the known time in `[start, end)` that the check was up; `None` when the status
/// was never known in that window. `timeline` is oldest first; a point before `start` sets
/// the status at `start`.
pub fn uptime_percent(timeline: &[Point], start: Timestamp, end: Timestamp) -> Option<f64> {
    let (up, known) = up_and_known(timeline, start, end);
    (known > 0).then(|| up as f64 * 100.0 / known as f64)
}

/// Milliseconds up and milliseconds known in `[start, end)`.
pub fn up_and_known(timeline: &[Point], start: Timestamp, end: Timestamp) -> (i64, i64) {
    let (mut up, mut known) = (0i64, 0i64);
    for (i, point) in timeline.iter().enumerate() {
        let segment_end = timeline.get(i + 1).map_or(end, |next| next.at).min(end);
        let segment_start = point.at.max(start);
        if segment_end <= segment_start || point.status == HealthStatus::Unknown {
            continue;
        }
        let length = segment_end.as_millis() - segment_start.as_millis();
        known += length;
        if point.status.is_up() {
            up += length;
        }
    }
    (up, known)
}

/// Uptime per day for the `days` days before `end` (oldest first), for uptime bars.
pub fn daily_uptime(timeline: &[Point], end: Timestamp, days: u32) -> Vec<Option<f64>> {
    const DAY: i64 = 86_400_000;
    (0..i64::from(days))
        .rev()
        .map(|back| {
            let day_end = Timestamp(end.as_millis() - back * DAY);
            uptime_percent(timeline, Timestamp(day_end.as_millis() - DAY), day_end)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use HealthStatus::*;

    const HOUR: i64 = 3_600_000;

    fn at(hours: i64, status: HealthStatus) -> Point {
        Point { at: Timestamp(hours * HOUR), status }
    }

    #[test]
    fn uptime_is_weighted_by_time() {
        // Healthy 0-18 h, unhealthy 18-24 h.
        let timeline = [at(0, Healthy), at(18, Unhealthy)];
        assert_eq!(uptime_percent(&timeline, Timestamp(0), Timestamp(24 * HOUR)), Some(75.0));
        // Degraded counts as up.
        let timeline = [at(0, Healthy), at(12, Degraded)];
        assert_eq!(uptime_percent(&timeline, Timestamp(0), Timestamp(24 * HOUR)), Some(100.0));
    }

    #[test]
    fn the_point_before_the_window_sets_its_first_status() {
        let timeline = [at(-100, Unhealthy), at(6, Healthy)];
        assert_eq!(uptime_percent(&timeline, Timestamp(0), Timestamp(24 * HOUR)), Some(75.0));
    }

    #[test]
    fn unknown_time_is_left_out_and_no_known_time_is_none() {
        // Unknown 0-12 h (hubmon stopped), healthy 12-18, unhealthy 18-24: 50 % of the known.
        let timeline = [at(0, Unknown), at(12, Healthy), at(18, Unhealthy)];
        assert_eq!(uptime_percent(&timeline, Timestamp(0), Timestamp(24 * HOUR)), Some(50.0));
        assert_eq!(uptime_percent(&[at(0, Unknown)], Timestamp(0), Timestamp(HOUR)), None);
        assert_eq!(uptime_percent(&[], Timestamp(0), Timestamp(HOUR)), None);
        assert_eq!(uptime_percent(&[at(5, Healthy)], Timestamp(0), Timestamp(2 * HOUR)), None, "starts later");
    }

    #[test]
    fn daily_bars_split_the_timeline_by_day() {
        let timeline = [at(0, Healthy), at(36, Unhealthy), at(42, Healthy)];
        let bars = daily_uptime(&timeline, Timestamp(72 * HOUR), 4);
        assert_eq!(bars, [None, Some(100.0), Some(75.0), Some(100.0)]);
    }
}
