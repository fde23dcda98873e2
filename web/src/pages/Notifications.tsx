import { useState } from "react";
import { Badge, Empty, ErrorBox, Field, Loading, Panel, Tabs, useLoad, type Tone } from "../components/ui";
import { api, ApiError } from "../lib/api";
import { CHANNEL_FIELDS, CHANNEL_KINDS, configFromForm, formFromConfig, type ChannelKind, type FormValues } from "../lib/channels";
import { formatAgo, formatTime } from "../lib/format";
import { useI18n } from "../lib/i18n";
import { useLive, useLiveEvents } from "../lib/live";
import { setParams, useLocation } from "../lib/router";
import { canEdit, isAdmin, useSession } from "../lib/session";

interface Channel {
  id: number;
  name: string;
  kind: ChannelKind;
  config: Record<string, unknown>;
  enabled: boolean;
  created_at: string;
  updated_at: string;
}

interface SendReport {
  notification_id: number | null;
  delivered: boolean;
  outcome: "delivered" | "retry" | "failed";
  status_code: number | null;
  detail: string;
  duration_ms: number;
  title: string;
}

interface NotificationRow {
  id: number;
  channel_id: number;
  kind: string;
  title: string;
  severity: string;
  status: "pending" | "sending" | "delivered" | "failed";
  attempts: number;
  max_attempts: number;
  last_error: string | null;
  created_at: string;
  delivered_at: string | null;
}

interface Attempt {
  attempt: number;
  started_at: string;
  duration_ms: number;
  outcome: string;
  status_code: number | null;
  detail: string;
  worker: string;
}

interface InboxMessage {
  id: number;
  severity: string;
  title: string;
  body: string;
  link: string | null;
  created_at: string;
  read_at: string | null;
}

type Tab = "inbox" | "history" | "channels";

const STATUS_TONE: Record<NotificationRow["status"], Tone> = { pending: "warn", sending: "info", delivered: "ok", failed: "bad" };

function message(error: unknown): string {
  return error instanceof ApiError || error instanceof Error ? error.message : String(error);
}

function severityTone(severity: string): Tone {
  return severity === "critical" ? "bad" : severity === "warning" ? "warn" : "info";
}

export function NotificationsPage() {
  const { t } = useI18n();
  const { me } = useSession();
  const { params } = useLocation();
  const tabs: { value: Tab; label: string }[] = [
    { value: "inbox", label: t("nt_inbox") },
    { value: "history", label: t("nt_history") },
    ...(isAdmin(me.role) ? [{ value: "channels" as Tab, label: t("nt_channels") }] : []),
  ];
  const tab = tabs.find((x) => x.value === params.get("tab"))?.value ?? "inbox";
  return (
    <div className="page" data-testid="page-notifications">
      <Tabs<Tab> label={t("nav_notifications")} value={tab} options={tabs} onChange={(v) => setParams({ tab: v })} />
      {tab === "inbox" ? <Inbox /> : null}
      {tab === "history" ? <History /> : null}
      {tab === "channels" ? <Channels /> : null}
    </div>
  );
}

function Inbox() {
  const { t, locale } = useI18n();
  const inbox = useLoad((signal) => api.get<{ messages: InboxMessage[]; unread: number }>("/api/v1/inbox?limit=100", signal), []);
  useLiveEvents((type) => {
    if (type === "inbox") inbox.reload();
  });
  const read = async (id?: number) => {
    await api.post(id === undefined ? "/api/v1/inbox/read-all" : `/api/v1/inbox/${id}/read`);
    inbox.reload();
    window.dispatchEvent(new Event("hubmon:inbox"));
  };
  if (inbox.error) return <ErrorBox message={inbox.error} onRetry={inbox.reload} />;
  if (!inbox.data) return <Loading />;
  return (
    <Panel
      title={t("nt_inbox_title", { n: inbox.data.unread })}
      actions={
        inbox.data.unread > 0 ? (
          <button type="button" className="btn btn-small" onClick={() => void read()}>
            {t("nt_mark_all_read")}
          </button>
        ) : null
      }
    >
      {inbox.data.messages.length === 0 ? (
        <Empty title={t("nt_inbox_empty")} hint={t("nt_inbox_empty_hint")} />
      ) : (
        <ul className="inbox" data-testid="inbox">
          {inbox.data.messages.map((m) => (
            <li key={m.id} className={m.read_at ? "read" : "unread"}>
              <div className="inbox-head">
                <Badge tone={severityTone(m.severity)}>{m.severity}</Badge>
                <strong>{m.title}</strong>
                <span className="muted small" title={formatTime(m.created_at, locale)}>
                  {formatAgo(m.created_at, locale)}
                </span>
                {!m.read_at ? (
                  <button type="button" className="btn btn-small btn-ghost" onClick={() => void read(m.id)}>
                    {t("nt_mark_read")}
                  </button>
                ) : null}
              </div>
              {m.body ? <p className="inbox-body">{m.body}</p> : null}
            </li>
          ))}
        </ul>
      )}
    </Panel>
  );
}

function History() {
  const { t, locale } = useI18n();
  const { me } = useSession();
  const { tick } = useLive();
  const channels = useLoad(
    (signal) => (isAdmin(me.role) ? api.get<Channel[]>("/api/v1/channels", signal) : Promise.resolve([] as Channel[])),
    [],
  );
  const history = useLoad(
    (signal) => api.get<{ notifications: NotificationRow[] }>("/api/v1/notifications?limit=100", signal),
    [Math.floor(tick / 5)],
  );
  useLiveEvents((type) => {
    if (type === "notification") history.reload();
  });
  const [open, setOpen] = useState<number>();
  const [error, setError] = useState<string>();
  const name = (id: number) => channels.data?.find((c) => c.id === id)?.name ?? `#${id}`;
  const retry = async (id: number) => {
    setError(undefined);
    try {
      await api.post(`/api/v1/notifications/${id}/retry`);
      history.reload();
    } catch (e) {
      setError(message(e));
    }
  };
  if (history.error) return <ErrorBox message={history.error} onRetry={history.reload} />;
  if (!history.data) return <Loading />;
  return (
    <Panel title={t("nt_history")}>
      {error ? <ErrorBox message={error} /> : null}
      {history.data.notifications.length === 0 ? (
        <Empty title={t("nt_history_empty")} />
      ) : (
        <div className="table-wrap" tabIndex={0}>
          <table className="table" data-testid="history-table">
            <thead>
              <tr>
                <th scope="col">{t("au_time")}</th>
                <th scope="col">{t("nt_channel")}</th>
                <th scope="col">{t("nt_title")}</th>
                <th scope="col">{t("status")}</th>
                <th scope="col" className="num">
                  {t("nt_attempts")}
                </th>
                <th scope="col">{t("actions")}</th>
              </tr>
            </thead>
            <tbody>
              {history.data.notifications.map((n) => (
                <HistoryRow
                  key={n.id}
                  row={n}
                  channel={name(n.channel_id)}
                  open={open === n.id}
                  onToggle={() => setOpen(open === n.id ? undefined : n.id)}
                  onRetry={canEdit(me.role) && n.status === "failed" ? () => void retry(n.id) : undefined}
                  locale={locale}
                />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Panel>
  );
}

function HistoryRow({
  row,
  channel,
  open,
  onToggle,
  onRetry,
  locale,
}: {
  row: NotificationRow;
  channel: string;
  open: boolean;
  onToggle: () => void;
  onRetry?: () => void;
  locale: string;
}) {
  const { t, ts } = useI18n();
  return (
    <>
      <tr>
        <td className="nowrap">{formatTime(row.created_at, locale)}</td>
        <td>{channel}</td>
        <td>
          <Badge tone={severityTone(row.severity)}>{row.kind}</Badge> {row.title}
        </td>
        <td>
          <Badge tone={STATUS_TONE[row.status]}>{ts(row.status)}</Badge>
        </td>
        <td className="num">
          {row.attempts}/{row.max_attempts}
        </td>
        <td className="actions">
          <button type="button" className="btn btn-small" aria-expanded={open} onClick={onToggle}>
            {t("nt_attempt_log")}
          </button>
          {onRetry ? (
            <button type="button" className="btn btn-small" onClick={onRetry}>
              {t("retry")}
            </button>
          ) : null}
        </td>
      </tr>
      {open ? (
        <tr className="detail-row">
          <td colSpan={6}>
            <AttemptLog id={row.id} />
          </td>
        </tr>
      ) : null}
    </>
  );
}

function AttemptLog({ id }: { id: number }) {
  const { t, ts, locale } = useI18n();
  const detail = useLoad((signal) => api.get<{ attempt_log: Attempt[]; last_error: string | null }>(`/api/v1/notifications/${id}`, signal), [id]);
  if (detail.error) return <ErrorBox message={detail.error} />;
  if (!detail.data) return <Loading />;
  if (detail.data.attempt_log.length === 0) return <p className="muted">{t("nt_no_attempts")}</p>;
  return (
    <ol className="attempts" data-testid="attempt-log">
      {detail.data.attempt_log.map((a) => (
        <li key={a.attempt}>
          <Badge tone={a.outcome === "delivered" ? "ok" : a.outcome === "retry" ? "warn" : "bad"}>
            #{a.attempt} {ts(a.outcome)}
          </Badge>
          <span className="muted small">
            {formatTime(a.started_at, locale)} · {a.duration_ms} ms{a.status_code ? ` · ${a.status_code}` : ""}
          </span>
          <span className="mono small">{a.detail}</span>
        </li>
      ))}
    </ol>
  );
}

function Channels() {
  const { t } = useI18n();
  const channels = useLoad((signal) => api.get<Channel[]>("/api/v1/channels", signal), []);
  const [editing, setEditing] = useState<Channel | "new">();
  const [reports, setReports] = useState<Record<number, SendReport | string>>({});
  const [error, setError] = useState<string>();
  const test = async (channel: Channel) => {
    setReports((r) => ({ ...r, [channel.id]: t("nt_testing") }));
    try {
      const report = await api.post<SendReport>(`/api/v1/channels/${channel.id}/test`);
      setReports((r) => ({ ...r, [channel.id]: report }));
    } catch (e) {
      setReports((r) => ({ ...r, [channel.id]: message(e) }));
    }
  };
  const remove = async (channel: Channel) => {
    if (!window.confirm(t("confirm_delete", { name: channel.name }))) return;
    try {
      await api.del(`/api/v1/channels/${channel.id}`);
      channels.reload();
    } catch (e) {
      setError(message(e));
    }
  };
  if (channels.error) return <ErrorBox message={channels.error} onRetry={channels.reload} />;
  if (!channels.data) return <Loading />;
  return (
    <div className="stack">
      {editing ? (
        <ChannelForm
          channel={editing === "new" ? undefined : editing}
          onDone={() => {
            setEditing(undefined);
            channels.reload();
          }}
          onCancel={() => setEditing(undefined)}
        />
      ) : null}
      {error ? <ErrorBox message={error} /> : null}
      <Panel
        title={t("nt_channels")}
        actions={
          <button type="button" className="btn btn-small btn-primary" onClick={() => setEditing("new")}>
            {t("nt_new_channel")}
          </button>
        }
      >
        {channels.data.length === 0 ? (
          <Empty title={t("nt_channels_empty")} hint={t("nt_channels_empty_hint")} />
        ) : (
          <ul className="channel-list" data-testid="channel-list">
            {channels.data.map((c) => {
              const report = reports[c.id];
              return (
                <li key={c.id}>
                  <div className="channel-head">
                    <strong>{c.name}</strong>
                    <Badge tone="info">{c.kind}</Badge>
                    {c.enabled ? <Badge tone="ok">{t("nt_enabled")}</Badge> : <Badge tone="muted">{t("set_disabled")}</Badge>}
                    <span className="channel-actions">
                      <button type="button" className="btn btn-small" onClick={() => void test(c)}>
                        {t("nt_test")}
                      </button>
                      <button type="button" className="btn btn-small" onClick={() => setEditing(c)}>
                        {t("nt_edit")}
                      </button>
                      <button type="button" className="btn btn-small btn-danger" onClick={() => void remove(c)}>
                        {t("delete")}
                      </button>
                    </span>
                  </div>
                  {report ? (
                    <div className="test-result" role="status" data-testid="test-result">
                      {typeof report === "string" ? (
                        <span>{report}</span>
                      ) : (
                        <>
                          <Badge tone={report.delivered ? "ok" : "bad"}>
                            {report.delivered ? t("nt_delivered") : t("nt_failed")}
                          </Badge>
                          <span className="muted small">
                            {report.duration_ms} ms{report.status_code ? ` · ${report.status_code}` : ""}
                          </span>
                          <span className="mono small">{report.detail}</span>
                        </>
                      )}
                    </div>
                  ) : null}
                </li>
              );
            })}
          </ul>
        )}
      </Panel>
    </div>
  );
}

function ChannelForm({ channel, onDone, onCancel }: { channel?: Channel; onDone: () => void; onCancel: () => void }) {
  const { t } = useI18n();
  const [name, setName] = useState(channel?.name ?? "");
  const [kind, setKind] = useState<ChannelKind>(channel?.kind ?? "webhook");
  const [enabled, setEnabled] = useState(channel?.enabled ?? true);
  const [values, setValues] = useState<FormValues>(() => (channel ? formFromConfig(channel.kind, channel.config) : {}));
  const [error, setError] = useState<string>();
  const save = async (event: React.FormEvent) => {
    event.preventDefault();
    setError(undefined);
    const body = { name, kind, enabled, config: configFromForm(kind, values) };
    try {
      if (channel) await api.put(`/api/v1/channels/${channel.id}`, body);
      else await api.post("/api/v1/channels", body);
      onDone();
    } catch (e) {
      setError(message(e));
    }
  };
  return (
    <Panel title={channel ? t("nt_edit_channel", { name: channel.name }) : t("nt_new_channel")}>
      <form className="channel-form" onSubmit={save} data-testid="channel-form">
        <div className="form-row">
          <Field label={t("name")}>
            <input required value={name} onChange={(e) => setName(e.target.value)} />
          </Field>
          <Field label={t("nt_kind")}>
            <select
              value={kind}
              disabled={channel !== undefined}
              onChange={(e) => {
                setKind(e.target.value as ChannelKind);
                setValues({});
              }}
            >
              {CHANNEL_KINDS.map((k) => (
                <option key={k} value={k}>
                  {k}
                </option>
              ))}
            </select>
          </Field>
          <label className="switch">
            <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} />
            <span>{t("nt_enabled")}</span>
          </label>
        </div>
        <div className="form-grid">
          {CHANNEL_FIELDS[kind].map((field) => {
            const value = values[field.name];
            const set = (v: string | boolean) => setValues((old) => ({ ...old, [field.name]: v }));
            if (field.type === "bool") {
              return (
                <label key={field.name} className="switch">
                  <input type="checkbox" checked={value === true} onChange={(e) => set(e.target.checked)} />
                  <span className="mono">{field.name}</span>
                </label>
              );
            }
            const hint = field.type === "secret" ? (channel ? t("nt_secret_keep") : t("nt_secret_write_only")) : field.type === "list" ? t("nt_list_hint") : undefined;
            return (
              <Field key={field.name} label={field.name + (field.required ? " *" : "")} hint={hint}>
                {field.type === "select" ? (
                  <select value={typeof value === "string" && value ? value : (field.options?.[0] ?? "")} onChange={(e) => set(e.target.value)}>
                    {(field.options ?? []).map((o) => (
                      <option key={o} value={o}>
                        {o}
                      </option>
                    ))}
                  </select>
                ) : (
                  <input
                    type={field.type === "secret" ? "password" : field.type === "number" ? "number" : "text"}
                    autoComplete={field.type === "secret" ? "new-password" : "off"}
                    required={field.required && !(field.type === "secret" && channel)}
                    placeholder={field.placeholder}
                    value={typeof value === "string" ? value : ""}
                    onChange={(e) => set(e.target.value)}
                  />
                )}
              </Field>
            );
          })}
        </div>
        {error ? <ErrorBox message={error} /> : null}
        <div className="form-row">
          <button type="submit" className="btn btn-primary">
            {t("save")}
          </button>
          <button type="button" className="btn" onClick={onCancel}>
            {t("cancel")}
          </button>
        </div>
      </form>
    </Panel>
  );
}
