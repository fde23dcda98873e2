//! The alert lifecycle: inactive → pending → firing → resolved, keyed by a fingerprint of the
//! alert's labels, with `for` and `keep_firing_for` as in Prometheus.
//!
//! [`Alerts`] holds every open alert. It is driven with explicit times (the rule group's
//! evaluation time), so tests run it on a fake clock, and it reports which alerts changed so
//! the caller persists exactly those. Alerts from outside (Alertmanager's `POST /api/v2/alerts`)
//! live here too, with their own start and end times.

use std::collections::BTreeMap;

use hubmon_model::{Alert, AlertStatus, Labels, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::rule::AlertRule;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Matching, waiting for `for` to elapse.
    Pending,
    Firing,
    /// Was firing, no longer is.
    Resolved,
    /// Matched, but stopped before `for` elapsed; never notified.
    Inactive,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Firing => "firing",
            State::Resolved => "resolved",
            State::Inactive => "inactive",
        }
    }

    pub fn is_open(self) -> bool {
        matches!(self, State::Pending | State::Firing)
    }
}

/// One alert instance and everything needed to continue it after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlertRecord {
    /// Row id in the state store; `None` until first saved.
    #[serde(skip)]
    pub id: Option<i64>,
    pub fingerprint: String,
    /// The rule's name (`alertname`).
    pub rule: String,
    pub state: State,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// The expression's value at the last evaluation that matched.
    pub value: f64,
    /// When the expression first matched (ms).
    pub active_at: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    /// Last evaluation at which the expression matched.
    pub last_seen_at: i64,
    /// `external` for alerts received over the Alertmanager API.
    #[serde(default)]
    pub source: String,
    /// Notification bookkeeping (see [`crate::dispatch`]).
    #[serde(default)]
    pub notified_at: Option<i64>,
    #[serde(default)]
    pub notifications: u32,
    #[serde(default)]
    pub resolve_notified: bool,
    #[serde(default)]
    pub acked_by: Option<String>,
    #[serde(default)]
    pub acked_at: Option<i64>,
}

impl AlertRecord {
    /// The alert in the notifier's vocabulary.
    pub fn to_alert(&self, generator_url: Option<String>) -> Alert {
        Alert {
            status: if self.state == State::Resolved { AlertStatus::Resolved } else { AlertStatus::Firing },
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            starts_at: Timestamp(self.fired_at.unwrap_or(self.active_at)),
            ends_at: self.resolved_at.map(Timestamp),
            generator_url,
            fingerprint: self.fingerprint.clone(),
            value: self.value.is_finite().then(|| format_value(self.value)),
        }
    }

    pub fn severity(&self) -> &str {
        self.labels.get("severity").map_or("warning", String::as_str)
    }
}

fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 { format!("{value:.0}") } else { format!("{value:.4}") }
}

/// A stable identifier of a label set: the first 16 hex digits of SHA-256 over the sorted
/// pairs, each part terminated by 0xff (a byte no UTF-8 text contains).
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    for (name, value) in labels {
        hasher.update(name.as_bytes());
        hasher.update([0xff]);
        hasher.update(value.as_bytes());
        hasher.update([0xff]);
    }
    hex::encode(&hasher.finalize()[..8])
}

/// Every open alert, and the ones that closed since the caller last collected changes.
#[derive(Debug, Default)]
pub struct Alerts {
    open: BTreeMap<String, AlertRecord>,
    /// Fingerprints changed since [`Alerts::take_changed`]; closed alerts wait here until then.
    changed: BTreeMap<String, AlertRecord>,
}

impl Alerts {
    /// Continues from what the state store held.
    pub fn restore(records: impl IntoIterator<Item = AlertRecord>) -> Self {
        let open = records.into_iter().filter(|r| r.state.is_open()).map(|r| (r.fingerprint.clone(), r)).collect();
        Self { open, changed: BTreeMap::new() }
    }

    pub fn open(&self) -> impl Iterator<Item = &AlertRecord> {
        self.open.values()
    }

    pub fn get(&self, fingerprint: &str) -> Option<&AlertRecord> {
        self.open.get(fingerprint)
    }

    pub fn get_mut(&mut self, fingerprint: &str) -> Option<&mut AlertRecord> {
        self.open.get_mut(fingerprint)
    }

    /// Marks an open alert changed (after the dispatcher or an ack touched it).
    pub fn touch(&mut self, fingerprint: &str) {
        if let Some(record) = self.open.get(fingerprint) {
            self.changed.insert(fingerprint.to_string(), record.clone());
        }
    }

    /// Open records changed since the last call, to persist. (Closed ones are handed to the
    /// caller by the call that closed them.)
    pub fn take_changed(&mut self) -> Vec<AlertRecord> {
        let changed = std::mem::take(&mut self.changed);
        changed.into_keys().filter_map(|fp| self.open.get(&fp).cloned()).collect()
    }

    /// Gives the row id the store assigned to a newly saved alert.
    pub fn set_id(&mut self, fingerprint: &str, id: i64) {
        if let Some(record) = self.open.get_mut(fingerprint) {
            record.id = Some(id);
        }
    }

    /// Applies one evaluation of `rule` at `now`: `result` is what its expression returned.
    /// Returns the alerts that resolved or went inactive at this evaluation (no longer open).
    pub fn apply(&mut self, rule: &AlertRule, result: &[(Labels, f64)], now: i64) -> Vec<AlertRecord> {
        let mut seen = std::collections::HashSet::new();
        for (series, value) in result {
            let mut labels: BTreeMap<String, String> =
                series.iter().filter(|(n, _)| *n != "__name__").map(|(n, v)| (n.to_string(), v.to_string())).collect();
            // Annotations see the series' labels plus the rule's, like Prometheus's $labels.
            for (name, v) in &rule.labels {
                labels.insert(name.clone(), v.clone());
            }
            labels.insert("alertname".into(), rule.name.clone());
            let annotations = rule.annotations.iter().map(|(n, t)| (n.clone(), t.render(&labels, *value))).collect();
            let fp = fingerprint(&labels);
            seen.insert(fp.clone());
            match self.open.get_mut(&fp) {
                Some(record) => {
                    record.value = *value;
                    record.last_seen_at = now;
                    record.annotations = annotations;
                    if record.state == State::Pending && now - record.active_at >= rule.hold.as_millis() as i64 {
                        record.state = State::Firing;
                        record.fired_at = Some(now);
                    }
                    self.changed.insert(fp.clone(), record.clone());
                }
                None => {
                    let firing = rule.hold.is_zero();
                    let record = AlertRecord {
                        id: None,
                        fingerprint: fp.clone(),
                        rule: rule.name.clone(),
                        state: if firing { State::Firing } else { State::Pending },
                        labels,
                        annotations,
                        value: *value,
                        active_at: now,
                        fired_at: firing.then_some(now),
                        resolved_at: None,
                        last_seen_at: now,
                        source: String::new(),
                        notified_at: None,
                        notifications: 0,
                        resolve_notified: false,
                        acked_by: None,
                        acked_at: None,
                    };
                    self.changed.insert(fp.clone(), record.clone());
                    self.open.insert(fp, record);
                }
            }
        }
        let keep = rule.keep_firing_for.as_millis() as i64;
        let gone: Vec<String> = self
            .open
            .values()
            .filter(|r| r.rule == rule.name && r.source.is_empty() && !seen.contains(&r.fingerprint))
            .filter(|r| !(r.state == State::Firing && now - r.last_seen_at < keep))
            .map(|r| r.fingerprint.clone())
            .collect();
        self.close(&gone, now)
    }

    /// Closes alerts: firing ones resolve, pending ones go inactive.
    fn close(&mut self, fingerprints: &[String], now: i64) -> Vec<AlertRecord> {
        let mut closed = Vec::new();
        for fp in fingerprints {
            if let Some(mut record) = self.open.remove(fp) {
                record.state = if record.state == State::Firing { State::Resolved } else { State::Inactive };
                record.resolved_at = Some(now);
                self.changed.remove(fp);
                closed.push(record);
            }
        }
        closed
    }

    /// Removes every alert of a rule that no longer exists or was disabled.
    pub fn drop_rule(&mut self, rule: &str, now: i64) -> Vec<AlertRecord> {
        let gone: Vec<String> = self.open.values().filter(|r| r.rule == rule).map(|r| r.fingerprint.clone()).collect();
        self.close(&gone, now)
    }

    /// An alert received from an external Prometheus: it fires from `starts_at` until
    /// `ends_at` (or until it is not re-sent within `resend_timeout`). Returns a closed record
    /// when the alert says it has ended.
    pub fn receive_external(
        &mut self,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
        starts_at: i64,
        ends_at: Option<i64>,
        now: i64,
    ) -> Option<AlertRecord> {
        let fp = fingerprint(&labels);
        if let Some(end) = ends_at
            && end <= now
        {
            return self.close(&[fp], end).pop();
        }
        let rule = labels.get("alertname").cloned().unwrap_or_default();
        let record = self.open.entry(fp.clone()).or_insert_with(|| AlertRecord {
            id: None,
            fingerprint: fp.clone(),
            rule,
            state: State::Firing,
            labels: labels.clone(),
            annotations: annotations.clone(),
            value: f64::NAN,
            active_at: starts_at,
            fired_at: Some(starts_at),
            resolved_at: None,
            last_seen_at: now,
            source: "external".into(),
            notified_at: None,
            notifications: 0,
            resolve_notified: false,
            acked_by: None,
            acked_at: None,
        });
        record.annotations = annotations;
        record.last_seen_at = ends_at.unwrap_or(now);
        self.changed.insert(fp, record.clone());
        None
    }

    /// Resolves external alerts whose sender stopped re-sending them (Alertmanager's
    /// `resolve_timeout`): `last_seen_at` holds their announced end or last receipt.
    pub fn expire_external(&mut self, now: i64, resolve_timeout: i64) -> Vec<AlertRecord> {
        let gone: Vec<String> = self
            .open
            .values()
            .filter(|r| r.source == "external" && now - r.last_seen_at >= resolve_timeout)
            .map(|r| r.fingerprint.clone())
            .collect();
        self.close(&gone, now)
    }
}
