//! The alert lifecycle and notification policy on a fake clock: rules evaluated with the real
//! PromQL engine over an in-memory series set, every 15 s of simulated time.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use hubmon_model::{Labels, MatchOp, Matcher, Sample};
use hubmon_promql::testing::MemoryQuerier;
use hubmon_promql::{Engine, EngineOptions};
use hubmon_rules::group::{GroupRuntime, evaluate};
use hubmon_rules::{
    AlertRuleSpec, Alerts, Dispatcher, Inhibition, Muter, Outgoing, Policy, RuleGroup, RuleSettings, Silence, State,
};

const STEP: i64 = 15_000;
const MIN: i64 = 60_000;

/// A gauge per instance whose value at each step comes from `value(instance, t)`.
fn querier(instances: &[&str], until: i64, value: impl Fn(&str, i64) -> f64) -> MemoryQuerier {
    let mut q = MemoryQuerier::new();
    for instance in instances {
        let labels = Labels::new([
            ("__name__".to_string(), "temperature".to_string()),
            ("instance".to_string(), instance.to_string()),
        ])
        .unwrap();
        q.add(labels, (0..=until / STEP).map(|i| Sample::new(i * STEP, value(instance, i * STEP))));
    }
    q
}

struct Sim {
    engine: Engine,
    group: RuleGroup,
    alerts: Alerts,
    runtime: GroupRuntime,
    dispatcher: Dispatcher,
    muter: Muter,
    sent: Vec<(i64, Outgoing)>,
}

impl Sim {
    fn new(querier: MemoryQuerier, rules: Vec<serde_json::Value>, policy: Policy) -> Self {
        let alerting = rules
            .into_iter()
            .map(|json| serde_json::from_value::<AlertRuleSpec>(json).unwrap().validate().unwrap())
            .collect();
        Sim {
            engine: Engine::new(Arc::new(querier), EngineOptions::default()),
            group: RuleGroup {
                name: "test".into(),
                source: "test".into(),
                interval: Duration::from_millis(STEP as u64),
                alerting,
                recording: Vec::new(),
            },
            alerts: Alerts::default(),
            runtime: GroupRuntime::default(),
            dispatcher: Dispatcher::new(policy),
            muter: Muter::default(),
            sent: Vec::new(),
        }
    }

    fn step(&mut self, now: i64) {
        let outcome = evaluate(&self.engine, &self.group, &mut self.alerts, &mut self.runtime, now);
        self.dispatcher.closed(&outcome.closed);
        let rules = self.group.alerting.clone();
        let settings = move |name: &str| {
            let rule = rules.iter().find(|r| r.name == name).unwrap();
            RuleSettings {
                cooldown: rule.cooldown.as_millis() as i64,
                notify_on_resolve: rule.notify_on_resolve,
                channels: vec![1],
            }
        };
        for message in self.dispatcher.due(&self.alerts, &self.muter, &settings, &|_| Vec::new(), now) {
            self.dispatcher.sent(&message, &mut self.alerts, now);
            self.sent.push((now, message));
        }
    }

    fn run(&mut self, from: i64, to: i64) {
        let mut t = from;
        while t <= to {
            self.step(t);
            t += STEP;
        }
    }

    /// (time, [(instance, firing|resolved)]) of every message so far.
    fn messages(&self) -> Vec<(i64, Vec<(String, &'static str)>)> {
        self.sent
            .iter()
            .map(|(t, m)| {
                let alerts = m
                    .alerts
                    .iter()
                    .map(|a| {
                        let state = if a.state == State::Resolved { "resolved" } else { "firing" };
                        (a.labels.get("instance").cloned().unwrap_or_default(), state)
                    })
                    .collect();
                (*t, alerts)
            })
            .collect()
    }
}

fn policy(group_wait: i64) -> Policy {
    Policy { group_wait, group_interval: 5 * MIN, group_by: Vec::new() }
}

fn hot_rule(extra: serde_json::Value) -> serde_json::Value {
    let mut rule = serde_json::json!({
        "name": "hot", "expr": "temperature > 50", "for": "2m", "severity": "critical",
        "annotations": {"summary": "{{ $labels.instance }} at {{ $value }}"}
    });
    rule.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    rule
}

#[test]
fn pending_then_firing_after_for_then_resolved_with_one_message_each() {
    // Hot from minute 5 to minute 20.
    let q = querier(&["a"], 40 * MIN, |_, t| if (5 * MIN..20 * MIN).contains(&t) { 60.0 } else { 20.0 });
    let mut sim = Sim::new(q, vec![hot_rule(serde_json::json!({}))], policy(0));
    sim.run(0, 6 * MIN);
    assert_eq!(sim.alerts.open().next().unwrap().state, State::Pending);
    assert!(sim.sent.is_empty(), "nothing is sent while pending");
    sim.run(6 * MIN + STEP, 7 * MIN);
    let alert = sim.alerts.open().next().unwrap();
    assert_eq!(alert.state, State::Firing);
    assert_eq!(alert.fired_at, Some(7 * MIN), "fires when `for` has elapsed since it became active");
    assert_eq!(alert.annotations["summary"], "a at 60");
    assert_eq!(sim.messages(), vec![(7 * MIN, vec![("a".into(), "firing")])]);
    sim.run(7 * MIN + STEP, 30 * MIN);
    assert_eq!(sim.messages()[1], (20 * MIN, vec![("a".into(), "resolved")]));
    assert_eq!(sim.sent.len(), 2);
    assert_eq!(sim.alerts.open().count(), 0);
}

#[test]
fn a_condition_shorter_than_for_never_notifies() {
    let q = querier(&["a"], 20 * MIN, |_, t| if (5 * MIN..6 * MIN).contains(&t) { 60.0 } else { 20.0 });
    let mut sim = Sim::new(q, vec![hot_rule(serde_json::json!({}))], policy(0));
    sim.run(0, 20 * MIN);
    assert!(sim.sent.is_empty());
}

#[test]
fn repeats_after_the_cooldown_and_not_before_and_ack_stops_them() {
    let q = querier(&["a"], 90 * MIN, |_, _| 60.0);
    let mut sim = Sim::new(q, vec![hot_rule(serde_json::json!({"for": "0s", "cooldown": "20m"}))], policy(0));
    sim.run(0, 39 * MIN);
    let times: Vec<i64> = sim.sent.iter().map(|(t, _)| *t).collect();
    assert_eq!(times, vec![0, 20 * MIN], "first at once, the repeat after exactly 20 minutes");
    let fp = sim.alerts.open().next().unwrap().fingerprint.clone();
    let alert = sim.alerts.get_mut(&fp).unwrap();
    alert.acked_by = Some("alice".into());
    alert.acked_at = Some(39 * MIN);
    sim.run(39 * MIN + STEP, 90 * MIN);
    assert_eq!(sim.sent.len(), 2, "an acknowledged alert is not repeated");
}

#[test]
fn silence_suppresses_and_its_expiry_resumes() {
    let q = querier(&["a"], 30 * MIN, |_, _| 60.0);
    let mut sim = Sim::new(q, vec![hot_rule(serde_json::json!({"for": "0s"}))], policy(0));
    sim.muter.silences.push(Silence {
        id: 1,
        matchers: vec![Matcher::new("alertname", MatchOp::Regex, "ho.*").unwrap()],
        starts_at: 0,
        ends_at: 10 * MIN,
    });
    sim.run(0, 10 * MIN - STEP);
    assert!(sim.sent.is_empty(), "silenced");
    sim.run(10 * MIN, 12 * MIN);
    assert_eq!(sim.messages(), vec![(10 * MIN, vec![("a".into(), "firing")])]);
}

#[test]
fn inhibition_mutes_targets_with_equal_labels_while_the_source_fires() {
    let q = querier(&["a", "b"], 30 * MIN, |_, _| 60.0);
    let rules = vec![
        serde_json::json!({"name": "host_down", "expr": "temperature > 0", "severity": "critical"}),
        serde_json::json!({"name": "hot", "expr": "temperature > 50", "severity": "warning"}),
    ];
    let mut sim = Sim::new(q, rules, policy(0));
    sim.muter.inhibitions.push(Inhibition {
        source: vec![
            Matcher::new("alertname", MatchOp::Equal, "host_down").unwrap(),
            Matcher::new("instance", MatchOp::Equal, "a").unwrap(),
        ],
        target: vec![Matcher::new("severity", MatchOp::Equal, "warning").unwrap()],
        equal: vec!["instance".into()],
    });
    sim.run(0, 2 * MIN);
    let hot: Vec<_> = sim
        .sent
        .iter()
        .flat_map(|(_, m)| m.alerts.iter())
        .filter(|a| a.rule == "hot")
        .map(|a| a.labels["instance"].clone())
        .collect();
    assert_eq!(hot, vec!["b".to_string()], "hot on a is inhibited by host_down on a; b is not");
}

#[test]
fn group_wait_batches_alerts_that_start_together() {
    // b turns hot 5 s of simulated evaluation later than a (next step), c much later.
    let q = querier(&["a", "b", "c"], 30 * MIN, |i, t| match i {
        "a" => 60.0,
        "b" if t >= STEP => 60.0,
        "c" if t >= 10 * MIN => 60.0,
        _ => 20.0,
    });
    let mut sim = Sim::new(q, vec![hot_rule(serde_json::json!({"for": "0s"}))], policy(30_000));
    sim.run(0, 20 * MIN);
    let messages = sim.messages();
    assert_eq!(messages[0], (30_000, vec![("a".into(), "firing"), ("b".into(), "firing")]), "{messages:?}");
    // c joins a group that already sent: it waits for group_interval (5 m after the first message).
    assert_eq!(messages[1], (10 * MIN, vec![("c".into(), "firing")]), "{messages:?}");
    assert_eq!(messages.len(), 2);
}

#[test]
fn keep_firing_for_damps_flapping() {
    // Off for 30 s every 2 minutes.
    let q = querier(&["a"], 20 * MIN, |_, t| if t % (2 * MIN) < 30_000 && t > 0 { 20.0 } else { 60.0 });
    let eager = || Policy { group_wait: 0, group_interval: 0, group_by: Vec::new() };
    let mut sim = Sim::new(q, vec![hot_rule(serde_json::json!({"for": "0s", "keep_firing_for": "1m"}))], eager());
    sim.run(0, 20 * MIN);
    assert_eq!(sim.sent.len(), 1, "one firing message, no resolve/fire churn: {:?}", sim.messages());
    let q = querier(&["a"], 20 * MIN, |_, t| if t % (2 * MIN) < 30_000 && t > 0 { 20.0 } else { 60.0 });
    let mut sim = Sim::new(q, vec![hot_rule(serde_json::json!({"for": "0s"}))], eager());
    sim.run(0, 20 * MIN);
    assert!(sim.sent.len() > 10, "without keep_firing_for it flaps: {}", sim.sent.len());
}

#[test]
fn a_restart_continues_pending_and_does_not_resend_firing() {
    let q = querier(&["a", "b"], 30 * MIN, |i, t| if i == "a" || t >= 9 * MIN { 60.0 } else { 20.0 });
    let mut sim = Sim::new(q, vec![hot_rule(serde_json::json!({}))], policy(0));
    sim.run(0, 10 * MIN);
    assert_eq!(sim.sent.len(), 1);
    // What the state store would hold, restored into a fresh process.
    let saved: Vec<_> = sim.alerts.open().cloned().collect();
    assert_eq!(saved.iter().filter(|a| a.state == State::Pending).count(), 1);
    let q = querier(&["a", "b"], 30 * MIN, |i, t| if i == "a" || t >= 9 * MIN { 60.0 } else { 20.0 });
    let mut restarted = Sim::new(q, vec![hot_rule(serde_json::json!({}))], policy(0));
    restarted.alerts = Alerts::restore(saved);
    restarted.run(10 * MIN + STEP, 12 * MIN);
    // a is not sent again; b fires 2 minutes after it became active at 9m, not after the restart.
    assert_eq!(restarted.messages(), vec![(11 * MIN, vec![("b".into(), "firing")])]);
}

#[test]
fn alerts_series_are_written_like_prometheus() {
    let q = querier(&["a"], 10 * MIN, |_, t| if t < 5 * MIN { 60.0 } else { 20.0 });
    let mut sim = Sim::new(q, vec![hot_rule(serde_json::json!({"for": "1m"}))], policy(0));
    let engine = &sim.engine;
    let outcome = evaluate(engine, &sim.group, &mut sim.alerts, &mut sim.runtime, 0);
    let names: Vec<String> = outcome
        .samples
        .iter()
        .map(|s| format!("{}{{alertstate={:?}}}", s.labels.get("__name__").unwrap(), s.labels.get("alertstate")))
        .collect();
    assert_eq!(names, vec!["ALERTS{alertstate=Some(\"pending\")}", "ALERTS_FOR_STATE{alertstate=None}"]);
    let outcome = evaluate(engine, &sim.group, &mut sim.alerts, &mut sim.runtime, MIN);
    let stale: Vec<_> = outcome.samples.iter().filter(|s| hubmon_model::is_stale_marker(s.samples[0].value)).collect();
    assert_eq!(stale.len(), 1, "the pending series ends when the alert fires");
    assert_eq!(stale[0].labels.get("alertstate"), Some("pending"));
}
