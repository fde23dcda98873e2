//! When alerts become notifications: grouping (`group_wait`, `group_interval`), repeats after
//! the rule's cooldown unless acknowledged, recovery messages, and muting by silences and
//! inhibition rules.
//!
//! The dispatcher decides and the caller delivers: [`Dispatcher::due`] returns the messages to
//! enqueue, and only after the notifier has accepted one does the caller report it with
//! [`Dispatcher::sent`]. Each message carries a dedup key derived from the alerts' persisted
//! state, so if the process dies between enqueueing and saving, the message computed again
//! after the restart has the same key and the notifier does not send it twice.

use std::collections::{BTreeMap, HashMap};

use hubmon_model::Matcher;
use serde::{Deserialize, Serialize};

use crate::lifecycle::{AlertRecord, Alerts, State};

/// Grouping settings.
#[derive(Debug, Clone)]
pub struct Policy {
    /// How long a new group waits for more members before its first message (ms).
    pub group_wait: i64,
    /// How long a group that has sent waits before sending news about new members (ms).
    pub group_interval: i64,
    /// Labels that, with `alertname`, make the group key.
    pub group_by: Vec<String>,
}

/// What the dispatcher needs to know about an alert's rule.
#[derive(Debug, Clone)]
pub struct RuleSettings {
    pub cooldown: i64,
    pub notify_on_resolve: bool,
    pub channels: Vec<i64>,
}

/// A silence: alerts matching every matcher are muted between `starts_at` and `ends_at`.
#[derive(Debug, Clone)]
pub struct Silence {
    pub id: i64,
    pub matchers: Vec<Matcher>,
    pub starts_at: i64,
    pub ends_at: i64,
}

/// Inhibition: while an alert matching `source` fires, alerts matching `target` with the same
/// values of the `equal` labels are muted (a host-down alert mutes that host's other alerts).
#[derive(Debug, Clone)]
pub struct Inhibition {
    pub source: Vec<Matcher>,
    pub target: Vec<Matcher>,
    pub equal: Vec<String>,
}

/// Why an alert is not notified now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "by", rename_all = "lowercase")]
pub enum Muted {
    Silence { id: i64 },
    Inhibition { source: String },
}

pub fn matches_all(matchers: &[Matcher], labels: &BTreeMap<String, String>) -> bool {
    matchers.iter().all(|m| m.matches(labels.get(&m.name).map_or("", String::as_str)))
}

/// Silences and inhibitions together: one question, "is this alert muted now?".
#[derive(Debug, Clone, Default)]
pub struct Muter {
    pub silences: Vec<Silence>,
    pub inhibitions: Vec<Inhibition>,
}

impl Muter {
    pub fn muted(&self, alert: &AlertRecord, firing: &[&AlertRecord], now: i64) -> Option<Muted> {
        if let Some(s) = self
            .silences
            .iter()
            .find(|s| s.starts_at <= now && now < s.ends_at && matches_all(&s.matchers, &alert.labels))
        {
            return Some(Muted::Silence { id: s.id });
        }
        for rule in &self.inhibitions {
            if !matches_all(&rule.target, &alert.labels) {
                continue;
            }
            let source = firing.iter().find(|source| {
                source.fingerprint != alert.fingerprint
                    && matches_all(&rule.source, &source.labels)
                    && rule.equal.iter().all(|l| source.labels.get(l) == alert.labels.get(l))
            });
            if let Some(source) = source {
                return Some(Muted::Inhibition { source: source.fingerprint.clone() });
            }
        }
        None
    }
}

/// One message to enqueue.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub group_key: String,
    pub group_labels: BTreeMap<String, String>,
    /// Snapshots of the alerts, in their state at the time of the message.
    pub alerts: Vec<AlertRecord>,
    pub channels: Vec<i64>,
    pub dedup_key: String,
}

#[derive(Debug, Default, Clone, Copy)]
struct GroupTimes {
    /// When a group that never sent may send its first message.
    first_due_at: Option<i64>,
    last_sent_at: Option<i64>,
}

pub struct Dispatcher {
    policy: Policy,
    groups: HashMap<String, GroupTimes>,
    /// Resolved alerts whose recovery message is still to go.
    resolved: Vec<AlertRecord>,
}

impl Dispatcher {
    pub fn new(policy: Policy) -> Self {
        Self { policy, groups: HashMap::new(), resolved: Vec::new() }
    }

    /// Hands over alerts that closed; resolved ones that were notified get a recovery message.
    pub fn closed(&mut self, records: &[AlertRecord]) {
        for record in records {
            if record.state == State::Resolved && record.notifications > 0 && !record.resolve_notified {
                self.resolved.push(record.clone());
            }
        }
    }

    fn group_of(&self, alert: &AlertRecord) -> (String, BTreeMap<String, String>) {
        let mut labels = BTreeMap::from([("alertname".to_string(), alert.rule.clone())]);
        for name in &self.policy.group_by {
            if let Some(value) = alert.labels.get(name) {
                labels.insert(name.clone(), value.clone());
            }
        }
        let key = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect::<Vec<_>>().join(",");
        (format!("{{{key}}}"), labels)
    }

    /// The messages due at `now`. `settings` looks a rule up by name; `routes` adds the
    /// channels the routing table chooses for an alert.
    pub fn due(
        &mut self,
        alerts: &Alerts,
        muter: &Muter,
        settings: &dyn Fn(&str) -> RuleSettings,
        routes: &dyn Fn(&AlertRecord) -> Vec<i64>,
        now: i64,
    ) -> Vec<Outgoing> {
        let firing: Vec<&AlertRecord> = alerts.open().filter(|a| a.state == State::Firing).collect();
        let mut candidates: BTreeMap<String, (BTreeMap<String, String>, Vec<AlertRecord>)> = BTreeMap::new();
        for alert in &firing {
            if muter.muted(alert, &firing, now).is_some() {
                continue;
            }
            let rule = settings(&alert.rule);
            let first = alert.notifications == 0;
            let repeat =
                !first && alert.acked_by.is_none() && alert.notified_at.is_some_and(|at| now - at >= rule.cooldown);
            if first || repeat {
                let (key, labels) = self.group_of(alert);
                candidates.entry(key).or_insert_with(|| (labels, Vec::new())).1.push((*alert).clone());
            }
        }
        for alert in &self.resolved {
            if settings(&alert.rule).notify_on_resolve && muter.muted(alert, &firing, now).is_none() {
                let (key, labels) = self.group_of(alert);
                candidates.entry(key).or_insert_with(|| (labels, Vec::new())).1.push(alert.clone());
            }
        }

        let mut out = Vec::new();
        for (key, (group_labels, mut members)) in candidates {
            members.sort_by(|a, b| a.labels.cmp(&b.labels));
            let times = self.groups.entry(key.clone()).or_default();
            let due = match times.last_sent_at {
                None => *times.first_due_at.get_or_insert(now + self.policy.group_wait) <= now,
                // A repeat is already held back by the cooldown; news about the group by group_interval.
                Some(last) => {
                    now - last >= self.policy.group_interval
                        || members.iter().all(|m| m.notifications > 0 && m.state == State::Firing)
                }
            };
            if !due {
                continue;
            }
            let mut channels: Vec<i64> = Vec::new();
            for member in &members {
                channels.extend(settings(&member.rule).channels);
                channels.extend(routes(member));
            }
            channels.sort_unstable();
            channels.dedup();
            if channels.is_empty() {
                tracing::debug!(group = %key, "no channel routes this alert group; nothing to send");
                continue;
            }
            let events: Vec<String> = members
                .iter()
                .map(|m| match m.state {
                    State::Resolved => format!("{}:resolved:{}", m.fingerprint, m.resolved_at.unwrap_or_default()),
                    _ => format!("{}:firing:{}:{}", m.fingerprint, m.active_at, m.notifications),
                })
                .collect();
            let dedup_key = format!("{key}|{}", events.join("|"));
            out.push(Outgoing { group_key: key, group_labels, alerts: members, channels, dedup_key });
        }
        out
    }

    /// Records that `message` was accepted by the notifier at `now`. Returns the resolved
    /// records whose recovery went out, to persist.
    pub fn sent(&mut self, message: &Outgoing, alerts: &mut Alerts, now: i64) -> Vec<AlertRecord> {
        let times = self.groups.entry(message.group_key.clone()).or_default();
        times.last_sent_at = Some(now);
        times.first_due_at = None;
        let mut done = Vec::new();
        for member in &message.alerts {
            if member.state == State::Resolved {
                if let Some(at) = self.resolved.iter().position(|r| r.fingerprint == member.fingerprint) {
                    let mut record = self.resolved.remove(at);
                    record.resolve_notified = true;
                    done.push(record);
                }
            } else if let Some(record) = alerts.get_mut(&member.fingerprint) {
                record.notified_at = Some(now);
                record.notifications += 1;
                alerts.touch(&member.fingerprint);
            }
        }
        // A group with nothing open left starts afresh next time.
        if alerts.open().all(|a| self.group_of(a).0 != message.group_key) {
            self.groups.remove(&message.group_key);
        }
        done
    }
}
