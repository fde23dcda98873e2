import { useEffect, useState } from "react";
import { Badge, Empty, ErrorBox, Field, Loading, Panel, Tabs, useLoad, type Tone } from "../components/ui";
import { api, ApiError, queryInstant, type InstantResult } from "../lib/api";
import {
  OPS,
  ruleState,
  SEVERITIES,
  silenceMatchersFor,
  simpleExpression,
  type Alert,
  type AlertsReport,
  type Rule,
  type RuleSpec,
  type Silence,
  type SilenceMatcher,
} from "../lib/alerts";
import { formatAgo, formatLabels, formatNumber, formatTime } from "../lib/format";
import { useI18n } from "../lib/i18n";
import { useLive, useLiveEvents } from "../lib/live";
import { setParams, useLocation } from "../lib/router";
import { canEdit, useSession } from "../lib/session";

type Tab = "active" | "history" | "rules" | "silences";

export function severityTone(severity: string): Tone {
  return severity === "critical" || severity === "error" ? "bad" : severity === "warning" ? "warn" : "info";
}

function stateTone(state: string): Tone {
  return state === "firing" ? "bad" : state === "pending" ? "warn" : state === "resolved" ? "ok" : "muted";
}

function message(error: unknown): string {
  return error instanceof ApiError || error instanceof Error ? error.message : String(error);
}

function Labels({ labels }: { labels: Record<string, string> }) {
  return (
    <span className="label-chips">
      {Object.entries(labels)
        .filter(([k]) => k !== "alertname" && k !== "severity")
        .map(([k, v]) => (
          <code key={k} className="label-chip">
            {k}={v}
          </code>
        ))}
    </span>
  );
}

export function AlertsPage() {
  const { t } = useI18n();
  const { params } = useLocation();
  const { tick } = useLive();
  const tab: Tab = (["active", "history", "rules", "silences"] as Tab[]).find((x) => x === params.get("tab")) ?? "active";
  const report = useLoad((signal) => api.get<AlertsReport>("/api/v1/monitoring/alerts", signal), [Math.floor(tick / 2)]);
  useLiveEvents((type) => {
    if (type === "alert") report.reload();
  });
  const [silenceFor, setSilenceFor] = useState<SilenceMatcher[]>();
  const counts = report.data?.counts ?? {};
  return (
    <div className="page" data-testid="page-alerts">
      <div className="severity-row">
        {SEVERITIES.map((s) => (
          <Badge key={s} tone={counts[s] ? severityTone(s) : "muted"}>
            {t(("sev_" + s) as "sev_critical")} <b>{counts[s] ?? 0}</b>
          </Badge>
        ))}
      </div>
      <Tabs<Tab>
        label={t("nav_alerts")}
        value={tab}
        options={[
          { value: "active", label: t("al_active") },
          { value: "history", label: t("al_history") },
          { value: "rules", label: t("al_rules") },
          { value: "silences", label: t("al_silences") },
        ]}
        onChange={(v) => setParams({ tab: v, rule: undefined })}
      />
      {report.error ? <ErrorBox message={report.error} onRetry={report.reload} /> : null}
      {tab === "active" ? (
        <>
          {silenceFor ? (
            <SilenceForm
              initial={silenceFor}
              onDone={() => {
                setSilenceFor(undefined);
                report.reload();
              }}
              onCancel={() => setSilenceFor(undefined)}
            />
          ) : null}
          <AlertTable alerts={report.data?.active} onChanged={report.reload} onSilence={(a) => setSilenceFor(silenceMatchersFor(a))} active />
        </>
      ) : null}
      {tab === "history" ? <AlertTable alerts={report.data?.history} onChanged={report.reload} /> : null}
      {tab === "rules" ? <Rules active={report.data?.active ?? []} /> : null}
      {tab === "silences" ? <Silences /> : null}
    </div>
  );
}

function AlertTable({
  alerts,
  active,
  onChanged,
  onSilence,
}: {
  alerts: Alert[] | undefined;
  active?: boolean;
  onChanged: () => void;
  onSilence?: (alert: Alert) => void;
}) {
  const { t, ts, locale } = useI18n();
  const { me } = useSession();
  const [error, setError] = useState<string>();
  const ack = async (alert: Alert) => {
    setError(undefined);
    try {
      await api.post(`/api/v1/alerts/${encodeURIComponent(alert.fingerprint)}/ack`);
      onChanged();
    } catch (e) {
      setError(message(e));
    }
  };
  if (!alerts) return <Loading />;
  return (
    <Panel title={active ? t("al_active") : t("al_history")}>
      {error ? <ErrorBox message={error} /> : null}
      {alerts.length === 0 ? (
        <Empty title={active ? t("ov_alerts_none") : t("al_history_empty")} />
      ) : (
        <div className="table-wrap" tabIndex={0}>
          <table className="table" data-testid={active ? "active-alerts" : "alert-history"}>
            <thead>
              <tr>
                <th scope="col">{t("al_severity")}</th>
                <th scope="col">{t("al_alert")}</th>
                <th scope="col">{t("status")}</th>
                <th scope="col" className="num">
                  {t("ex_value")}
                </th>
                <th scope="col">{t("al_since")}</th>
                {active && canEdit(me.role) ? <th scope="col">{t("actions")}</th> : null}
              </tr>
            </thead>
            <tbody>
              {alerts.map((a) => (
                <tr key={a.fingerprint + a.since}>
                  <td>
                    <Badge tone={severityTone(a.severity)}>{a.severity}</Badge>
                  </td>
                  <td>
                    <strong>{a.labels.alertname ?? a.rule}</strong> <Labels labels={a.labels} />
                    {a.annotations.summary ? <div className="muted small">{a.annotations.summary}</div> : null}
                  </td>
                  <td>
                    <Badge tone={stateTone(a.state)}>{ts(a.state)}</Badge>{" "}
                    {a.acknowledged_by ? <Badge tone="info">{t("al_acked_by", { name: a.acknowledged_by })}</Badge> : null}{" "}
                    {a.muted ? <Badge tone="muted">{a.muted.by === "silence" ? t("al_silenced") : t("al_inhibited")}</Badge> : null}
                  </td>
                  <td className="num">{a.value === null ? "–" : formatNumber(a.value)}</td>
                  <td className="nowrap" title={formatTime(a.since, locale)}>
                    {formatAgo(a.since, locale)}
                  </td>
                  {active && canEdit(me.role) ? (
                    <td className="actions">
                      {a.state === "firing" && !a.acknowledged_by ? (
                        <button type="button" className="btn btn-small" onClick={() => void ack(a)}>
                          {t("al_ack")}
                        </button>
                      ) : null}
                      {onSilence && !a.muted ? (
                        <button type="button" className="btn btn-small" onClick={() => onSilence(a)}>
                          {t("al_silence")}
                        </button>
                      ) : null}
                    </td>
                  ) : null}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Panel>
  );
}

function SilenceForm({ initial, onDone, onCancel }: { initial: SilenceMatcher[]; onDone: () => void; onCancel: () => void }) {
  const { t } = useI18n();
  const [matchers, setMatchers] = useState<SilenceMatcher[]>(initial);
  const [duration, setDuration] = useState("2h");
  const [comment, setComment] = useState("");
  const [error, setError] = useState<string>();
  const save = async (event: React.FormEvent) => {
    event.preventDefault();
    setError(undefined);
    try {
      await api.post("/api/v1/silences", { matchers: matchers.filter((m) => m.name.trim()), duration, comment });
      onDone();
    } catch (e) {
      setError(message(e));
    }
  };
  const set = (i: number, change: Partial<SilenceMatcher>) => setMatchers((ms) => ms.map((m, j) => (j === i ? { ...m, ...change } : m)));
  return (
    <Panel title={t("al_new_silence")}>
      <form className="stack" onSubmit={save} data-testid="silence-form">
        {matchers.map((m, i) => (
          <div key={i} className="form-row compact matcher-row">
            <input aria-label={t("al_label")} value={m.name} onChange={(e) => set(i, { name: e.target.value })} />
            <select aria-label={t("al_operator")} value={m.op} onChange={(e) => set(i, { op: e.target.value as SilenceMatcher["op"] })}>
              {["=", "!=", "=~", "!~"].map((op) => (
                <option key={op} value={op}>
                  {op}
                </option>
              ))}
            </select>
            <input aria-label={t("al_value")} value={m.value} onChange={(e) => set(i, { value: e.target.value })} />
            <button type="button" className="btn btn-small btn-ghost" onClick={() => setMatchers((ms) => ms.filter((_, j) => j !== i))}>
              {t("delete")}
            </button>
          </div>
        ))}
        <div className="form-row">
          <button type="button" className="btn btn-small" onClick={() => setMatchers((ms) => [...ms, { name: "", op: "=", value: "" }])}>
            {t("al_add_matcher")}
          </button>
        </div>
        <div className="form-row">
          <Field label={t("al_duration")}>
            <input required value={duration} onChange={(e) => setDuration(e.target.value)} />
          </Field>
          <Field label={t("al_comment")}>
            <input value={comment} onChange={(e) => setComment(e.target.value)} />
          </Field>
          <button type="submit" className="btn btn-primary">
            {t("al_silence")}
          </button>
          <button type="button" className="btn" onClick={onCancel}>
            {t("cancel")}
          </button>
        </div>
        {error ? <ErrorBox message={error} /> : null}
      </form>
    </Panel>
  );
}

function Silences() {
  const { t, ts, locale } = useI18n();
  const { me } = useSession();
  const silences = useLoad((signal) => api.get<Silence[]>("/api/v1/silences", signal), []);
  const [creating, setCreating] = useState(false);
  const expire = async (s: Silence) => {
    await api.del(`/api/v1/silences/${s.id}`);
    silences.reload();
  };
  if (silences.error) return <ErrorBox message={silences.error} onRetry={silences.reload} />;
  if (!silences.data) return <Loading />;
  return (
    <div className="stack">
      {creating ? (
        <SilenceForm
          initial={[{ name: "alertname", op: "=", value: "" }]}
          onDone={() => {
            setCreating(false);
            silences.reload();
          }}
          onCancel={() => setCreating(false)}
        />
      ) : null}
      <Panel
        title={t("al_silences")}
        actions={
          canEdit(me.role) ? (
            <button type="button" className="btn btn-small btn-primary" onClick={() => setCreating(true)}>
              {t("al_new_silence")}
            </button>
          ) : null
        }
      >
        {silences.data.length === 0 ? (
          <Empty title={t("al_no_silences")} />
        ) : (
          <div className="table-wrap" tabIndex={0}>
            <table className="table" data-testid="silences">
              <thead>
                <tr>
                  <th scope="col">{t("al_matchers")}</th>
                  <th scope="col">{t("status")}</th>
                  <th scope="col">{t("al_ends")}</th>
                  <th scope="col">{t("set_created_by")}</th>
                  <th scope="col">{t("al_comment")}</th>
                  {canEdit(me.role) ? <th scope="col">{t("actions")}</th> : null}
                </tr>
              </thead>
              <tbody>
                {silences.data.map((s) => (
                  <tr key={s.id}>
                    <td className="mono">{s.matchers.map((m) => `${m.name}${m.op}"${m.value}"`).join(", ")}</td>
                    <td>
                      <Badge tone={s.state === "active" ? "info" : "muted"}>{ts(s.state)}</Badge>
                    </td>
                    <td className="nowrap">{formatTime(s.ends_at, locale)}</td>
                    <td>{s.created_by}</td>
                    <td>{s.comment}</td>
                    {canEdit(me.role) ? (
                      <td className="actions">
                        {s.state !== "expired" ? (
                          <button type="button" className="btn btn-small" onClick={() => void expire(s)}>
                            {t("al_expire")}
                          </button>
                        ) : null}
                      </td>
                    ) : null}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Panel>
    </div>
  );
}

function Rules({ active }: { active: Alert[] }) {
  const { t, ts } = useI18n();
  const { me } = useSession();
  const { params } = useLocation();
  const rules = useLoad((signal) => api.get<Rule[]>("/api/v1/alerts/rules", signal), []);
  const editing = params.get("rule");
  const [error, setError] = useState<string>();
  const remove = async (rule: Rule) => {
    if (!window.confirm(t("confirm_delete", { name: rule.name }))) return;
    try {
      await api.del(`/api/v1/rules/${rule.id}`);
      rules.reload();
    } catch (e) {
      setError(message(e));
    }
  };
  if (rules.error) return <ErrorBox message={rules.error} onRetry={rules.reload} />;
  if (!rules.data) return <Loading />;
  const current = editing === "new" ? undefined : rules.data.find((r) => String(r.id) === editing);
  return (
    <div className="stack">
      {editing && canEdit(me.role) ? (
        <RuleEditor
          key={editing}
          rule={current}
          onDone={() => {
            setParams({ rule: undefined });
            rules.reload();
          }}
        />
      ) : null}
      {error ? <ErrorBox message={error} /> : null}
      <Panel
        title={t("al_rules")}
        actions={
          canEdit(me.role) ? (
            <button type="button" className="btn btn-small btn-primary" onClick={() => setParams({ rule: "new" })}>
              {t("al_new_rule")}
            </button>
          ) : null
        }
      >
        {rules.data.length === 0 ? (
          <Empty title={t("al_no_rules")} />
        ) : (
          <div className="table-wrap" tabIndex={0}>
            <table className="table" data-testid="rules">
              <thead>
                <tr>
                  <th scope="col">{t("name")}</th>
                  <th scope="col">{t("al_expression")}</th>
                  <th scope="col">{t("al_severity")}</th>
                  <th scope="col">{t("status")}</th>
                  <th scope="col">{t("al_health")}</th>
                  {canEdit(me.role) ? <th scope="col">{t("actions")}</th> : null}
                </tr>
              </thead>
              <tbody>
                {rules.data.map((r) => {
                  const state = r.enabled === false ? "disabled" : ruleState(r.name, active);
                  return (
                    <tr key={r.id}>
                      <td>
                        <strong>{r.name}</strong>
                        {r.source !== "api" ? <span className="muted small"> · {r.source}</span> : null}
                      </td>
                      <td className="mono small">{r.compiled_expr}</td>
                      <td>
                        <Badge tone={severityTone(r.severity ?? "warning")}>{r.severity ?? r.labels?.severity ?? "warning"}</Badge>
                      </td>
                      <td>
                        <Badge tone={stateTone(state)}>{ts(state)}</Badge>
                      </td>
                      <td>
                        <Badge tone={r.health.health === "ok" ? "ok" : r.health.health === "err" ? "bad" : "muted"}>{ts(r.health.health)}</Badge>
                        {r.health.last_error ? <div className="small text-bad">{r.health.last_error}</div> : null}
                      </td>
                      {canEdit(me.role) ? (
                        <td className="actions">
                          <button type="button" className="btn btn-small" onClick={() => setParams({ rule: String(r.id) })}>
                            {t("nt_edit")}
                          </button>
                          <button type="button" className="btn btn-small btn-danger" onClick={() => void remove(r)}>
                            {t("delete")}
                          </button>
                        </td>
                      ) : null}
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </Panel>
    </div>
  );
}

type Mode = "simple" | "promql";

function RuleEditor({ rule, onDone }: { rule?: Rule; onDone: () => void }) {
  const { t } = useI18n();
  const [mode, setMode] = useState<Mode>(rule?.expr ? "promql" : "simple");
  const [name, setName] = useState(rule?.name ?? "");
  const [metric, setMetric] = useState(rule?.metric ?? "");
  const [op, setOp] = useState(rule?.op ?? ">");
  const [threshold, setThreshold] = useState(rule?.threshold !== undefined ? String(rule.threshold) : "");
  const [expr, setExpr] = useState(rule?.expr ?? "");
  const [severity, setSeverity] = useState(rule?.severity ?? "warning");
  const [hold, setHold] = useState(rule?.for ?? "");
  const [summary, setSummary] = useState(rule?.annotations?.summary ?? "");
  const [enabled, setEnabled] = useState(rule?.enabled ?? true);
  const [error, setError] = useState<string>();
  const [created, setCreated] = useState<{ labels: Record<string, string>; value: number }[]>();
  const expression =
    mode === "promql" ? expr.trim() : metric.trim() && threshold.trim() && Number.isFinite(Number(threshold)) ? simpleExpression(metric, op, Number(threshold)) : "";
  const [preview, setPreview] = useState<{ expression: string; result?: InstantResult; error?: string }>();

  // Preview the expression's current result as it is typed (debounced).
  useEffect(() => {
    if (!expression) {
      setPreview(undefined);
      return;
    }
    const controller = new AbortController();
    const timer = window.setTimeout(() => {
      queryInstant(expression, undefined, controller.signal)
        .then((result) => setPreview({ expression, result }))
        .catch((e: unknown) => {
          if (!controller.signal.aborted) setPreview({ expression, error: message(e) });
        });
    }, 400);
    return () => {
      window.clearTimeout(timer);
      controller.abort();
    };
  }, [expression]);

  const save = async (event: React.FormEvent) => {
    event.preventDefault();
    setError(undefined);
    const spec: RuleSpec = { name, severity, enabled, annotations: summary ? { summary } : {} };
    if (hold.trim()) spec.for = hold.trim();
    if (mode === "promql") spec.expr = expr;
    else {
      spec.metric = metric;
      spec.op = op;
      spec.threshold = Number(threshold);
    }
    try {
      if (rule) {
        await api.put(`/api/v1/rules/${rule.id}`, spec);
        onDone();
      } else {
        const answer = await api.post<{ would_fire: { labels: Record<string, string>; value: number }[] }>("/api/v1/monitoring/alerts/rules", spec);
        setCreated(answer.would_fire);
        window.setTimeout(onDone, 1500);
      }
    } catch (e) {
      setError(message(e));
    }
  };

  const firing = preview?.result?.resultType === "vector" ? preview.result.result : [];
  return (
    <Panel title={rule ? t("al_edit_rule", { name: rule.name }) : t("al_new_rule")}>
      <form className="stack" onSubmit={save} data-testid="rule-editor">
        <Tabs<Mode>
          label={t("al_rule_mode")}
          value={mode}
          options={[
            { value: "simple", label: t("al_simple") },
            { value: "promql", label: "PromQL" },
          ]}
          onChange={setMode}
        />
        <div className="form-grid">
          <Field label={t("name")}>
            <input required value={name} onChange={(e) => setName(e.target.value)} placeholder="HighLoad" />
          </Field>
          <Field label={t("al_severity")}>
            <select value={severity} onChange={(e) => setSeverity(e.target.value)}>
              {SEVERITIES.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          </Field>
          <Field label={t("al_for")} hint={t("al_for_hint")}>
            <input value={hold} onChange={(e) => setHold(e.target.value)} placeholder="5m" />
          </Field>
          <Field label={t("al_summary")}>
            <input value={summary} onChange={(e) => setSummary(e.target.value)} placeholder="Load is {{ $value }} on {{ $labels.instance }}" />
          </Field>
        </div>
        {mode === "simple" ? (
          <div className="form-row">
            <Field label={t("al_metric")}>
              <input className="mono" required value={metric} onChange={(e) => setMetric(e.target.value)} placeholder="node_load1" />
            </Field>
            <Field label={t("al_operator")}>
              <select value={op} onChange={(e) => setOp(e.target.value)}>
                {OPS.map((o) => (
                  <option key={o} value={o}>
                    {o}
                  </option>
                ))}
              </select>
            </Field>
            <Field label={t("al_threshold")}>
              <input type="number" step="any" required value={threshold} onChange={(e) => setThreshold(e.target.value)} />
            </Field>
          </div>
        ) : (
          <Field label={t("al_expression")}>
            <textarea className="mono" rows={3} required value={expr} onChange={(e) => setExpr(e.target.value)} placeholder="node_load1 > 4" />
          </Field>
        )}
        <label className="switch">
          <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} />
          <span>{t("nt_enabled")}</span>
        </label>
        <div className="preview" data-testid="rule-preview">
          <div className="field-label">{t("al_preview")}</div>
          {!expression ? (
            <p className="muted small">{t("al_preview_empty")}</p>
          ) : (
            <>
              <code className="mono small">{expression}</code>
              {preview?.error ? <ErrorBox message={preview.error} /> : null}
              {preview?.result ? (
                <p className={firing.length ? "text-bad" : "text-ok"} data-testid="would-fire">
                  {t("al_would_fire", { n: firing.length })}
                </p>
              ) : null}
              {firing.length > 0 ? (
                <ul className="preview-list">
                  {firing.slice(0, 10).map((s, i) => (
                    <li key={i} className="mono small">
                      {formatLabels(s.metric)} = {s.value[1]}
                    </li>
                  ))}
                </ul>
              ) : null}
            </>
          )}
        </div>
        {error ? <ErrorBox message={error} /> : null}
        {created ? (
          <p role="status" className="text-ok" data-testid="rule-created">
            {t("al_rule_saved", { n: created.length })}
          </p>
        ) : null}
        <div className="form-row">
          <button type="submit" className="btn btn-primary">
            {t("save")}
          </button>
          <button type="button" className="btn" onClick={onDone}>
            {t("cancel")}
          </button>
        </div>
      </form>
    </Panel>
  );
}
