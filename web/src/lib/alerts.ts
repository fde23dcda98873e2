// The alerting API's types and the pure parts of the Alerts page.

export type AlertState = "pending" | "firing" | "resolved" | "inactive";

export interface Alert {
  fingerprint: string;
  rule: string;
  state: AlertState;
  severity: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  value: number | null;
  since: string;
  fired_at: string | null;
  resolved_at: string | null;
  source: "rule" | "external";
  acknowledged_by: string | null;
  acknowledged_at: string | null;
  muted: { by: "silence"; id: number } | { by: "inhibition"; source: string } | null;
  notifications: number;
}

export interface AlertsReport {
  active: Alert[];
  counts: Record<string, number>;
  history: Alert[];
}

export interface RuleSpec {
  name: string;
  expr?: string;
  metric?: string;
  op?: string;
  threshold?: number;
  severity?: string;
  for?: string;
  keep_firing_for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  enabled?: boolean;
  notify_on_resolve?: boolean;
  channels?: number[];
  cooldown?: string;
}

export interface Rule extends RuleSpec {
  id: number;
  source: string;
  compiled_expr: string;
  health: { health: string; last_error: string | null; last_evaluation: number | null; evaluation_seconds: number };
  created_at: string;
  updated_at: string;
}

export interface SilenceMatcher {
  name: string;
  op: "=" | "!=" | "=~" | "!~";
  value: string;
}

export interface Silence {
  id: number;
  matchers: SilenceMatcher[];
  starts_at: string;
  ends_at: string;
  created_by: string;
  comment: string;
  state: "pending" | "active" | "expired";
}

export const SEVERITIES = ["critical", "error", "warning", "info"];
export const OPS = [">", ">=", "<", "<=", "==", "!="];

/** The PromQL a simple-form rule compiles to (the same rule the server applies). */
export function simpleExpression(metric: string, op: string, threshold: number): string {
  const m = metric.trim();
  const wrap = m.includes(" ") && !(m.startsWith("(") && m.endsWith(")"));
  return `${wrap ? `(${m})` : m} ${op} ${threshold}`;
}

/** A silence for exactly this alert: one equality matcher per label. */
export function silenceMatchersFor(alert: Pick<Alert, "labels">): SilenceMatcher[] {
  return Object.entries(alert.labels)
    .filter(([name]) => name !== "__name__")
    .sort(([a], [b]) => (a === "alertname" ? -1 : b === "alertname" ? 1 : a.localeCompare(b)))
    .map(([name, value]) => ({ name, op: "=", value }));
}

/** A rule's state from the active alerts: firing wins over pending; none is inactive. */
export function ruleState(rule: string, active: Alert[]): AlertState {
  const mine = active.filter((a) => a.rule === rule);
  if (mine.some((a) => a.state === "firing")) return "firing";
  if (mine.length > 0) return "pending";
  return "inactive";
}
