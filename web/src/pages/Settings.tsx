import { useState } from "react";
import { Badge, Empty, ErrorBox, Field, Loading, Panel, Tabs, useLoad } from "../components/ui";
import { api, ApiError, type AuditPage, type CreatedToken, type Role, type Token, type User } from "../lib/api";
import { formatAgo, formatTime } from "../lib/format";
import { useI18n } from "../lib/i18n";
import { setParams, useLocation } from "../lib/router";
import { isAdmin, useSession } from "../lib/session";

type Tab = "users" | "tokens" | "audit" | "password";
const ROLES: Role[] = ["viewer", "editor", "admin", "ingest"];

function message(error: unknown): string {
  return error instanceof ApiError || error instanceof Error ? error.message : String(error);
}

export function SettingsPage() {
  const { t } = useI18n();
  const { me } = useSession();
  const { params } = useLocation();
  const admin = isAdmin(me.role);
  const tabs: { value: Tab; label: string }[] = [
    ...(admin
      ? ([
          { value: "users", label: t("set_users") },
          { value: "tokens", label: t("set_tokens") },
          { value: "audit", label: t("set_audit") },
        ] as const)
      : []),
    ...(me.kind === "user" ? ([{ value: "password", label: t("set_password") }] as const) : []),
  ];
  const requested = params.get("tab") as Tab | null;
  const tab = tabs.find((x) => x.value === requested)?.value ?? tabs[0]?.value;
  return (
    <div className="page" data-testid="page-settings">
      {tabs.length > 0 && tab ? (
        <Tabs<Tab> label={t("nav_settings")} value={tab} options={tabs} onChange={(v) => setParams({ tab: v })} />
      ) : null}
      {!admin ? <p className="muted">{t("admin_only")}</p> : null}
      {tab === "users" ? <Users /> : null}
      {tab === "tokens" ? <Tokens /> : null}
      {tab === "audit" ? <Audit /> : null}
      {tab === "password" ? <Password /> : null}
    </div>
  );
}

function Users() {
  const { t, ts, locale } = useI18n();
  const { me } = useSession();
  const users = useLoad((signal) => api.get<User[]>("/api/v1/users", signal), []);
  const [error, setError] = useState<string>();
  const [form, setForm] = useState({ username: "", password: "", role: "viewer" as Role });
  const create = async (event: React.FormEvent) => {
    event.preventDefault();
    setError(undefined);
    try {
      await api.post("/api/v1/users", form);
      setForm({ username: "", password: "", role: "viewer" });
      users.reload();
    } catch (e) {
      setError(message(e));
    }
  };
  const change = async (user: User, body: Record<string, unknown>) => {
    setError(undefined);
    try {
      await api.patch(`/api/v1/users/${user.id}`, body);
      users.reload();
    } catch (e) {
      setError(message(e));
    }
  };
  const remove = async (user: User) => {
    if (!window.confirm(t("confirm_delete", { name: user.username }))) return;
    try {
      await api.del(`/api/v1/users/${user.id}`);
      users.reload();
    } catch (e) {
      setError(message(e));
    }
  };
  return (
    <div className="stack">
      <Panel title={t("set_new_user")}>
        <form className="form-row" onSubmit={create}>
          <Field label={t("set_username")}>
            <input required value={form.username} onChange={(e) => setForm({ ...form, username: e.target.value })} />
          </Field>
          <Field label={t("set_password_field")}>
            <input
              required
              type="password"
              minLength={8}
              autoComplete="new-password"
              value={form.password}
              onChange={(e) => setForm({ ...form, password: e.target.value })}
            />
          </Field>
          <Field label={t("role")}>
            <select value={form.role} onChange={(e) => setForm({ ...form, role: e.target.value as Role })}>
              {ROLES.map((r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
            </select>
          </Field>
          <button type="submit" className="btn btn-primary">
            {t("create")}
          </button>
        </form>
      </Panel>
      {error ? <ErrorBox message={error} /> : null}
      <Panel title={t("set_users")}>
        {users.error ? (
          <ErrorBox message={users.error} onRetry={users.reload} />
        ) : !users.data ? (
          <Loading />
        ) : (
          <div className="table-wrap" tabIndex={0}>
            <table className="table" data-testid="users-table">
              <thead>
                <tr>
                  <th scope="col">{t("set_username")}</th>
                  <th scope="col">{t("role")}</th>
                  <th scope="col">{t("status")}</th>
                  <th scope="col">{t("set_last_login")}</th>
                  <th scope="col">{t("actions")}</th>
                </tr>
              </thead>
              <tbody>
                {users.data.map((user) => (
                  <tr key={user.id}>
                    <td className="username">{user.username}</td>
                    <td>
                      <select
                        aria-label={`${t("role")} ${user.username}`}
                        value={user.role}
                        disabled={user.id === me.id && me.kind === "user"}
                        onChange={(e) => void change(user, { role: e.target.value })}
                      >
                        {ROLES.map((r) => (
                          <option key={r} value={r}>
                            {r}
                          </option>
                        ))}
                      </select>
                    </td>
                    <td>{user.disabled ? <Badge tone="muted">{t("set_disabled")}</Badge> : <Badge tone="ok">{ts("active")}</Badge>}</td>
                    <td title={formatTime(user.last_login_at, locale)}>
                      {user.last_login_at ? formatAgo(user.last_login_at, locale) : t("set_never")}
                    </td>
                    <td className="actions">
                      {user.id === me.id && me.kind === "user" ? null : (
                        <>
                          <button type="button" className="btn btn-small" onClick={() => void change(user, { disabled: !user.disabled })}>
                            {user.disabled ? t("set_enable") : t("set_disable")}
                          </button>
                          <button type="button" className="btn btn-small btn-danger" onClick={() => void remove(user)}>
                            {t("delete")}
                          </button>
                        </>
                      )}
                    </td>
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

function Tokens() {
  const { t, ts, locale } = useI18n();
  const tokens = useLoad((signal) => api.get<Token[]>("/api/v1/tokens", signal), []);
  const [error, setError] = useState<string>();
  const [created, setCreated] = useState<CreatedToken>();
  const [copied, setCopied] = useState(false);
  const [form, setForm] = useState({ name: "", role: "viewer" as Role, expires_in: "" });
  const create = async (event: React.FormEvent) => {
    event.preventDefault();
    setError(undefined);
    try {
      const body: Record<string, unknown> = { name: form.name, role: form.role };
      if (form.expires_in.trim()) body.expires_in = form.expires_in.trim();
      setCreated(await api.post<CreatedToken>("/api/v1/tokens", body));
      setCopied(false);
      setForm({ name: "", role: "viewer", expires_in: "" });
      tokens.reload();
    } catch (e) {
      setError(message(e));
    }
  };
  const revoke = async (token: Token) => {
    if (!window.confirm(t("confirm_delete", { name: token.name }))) return;
    try {
      await api.del(`/api/v1/tokens/${token.id}`);
      tokens.reload();
    } catch (e) {
      setError(message(e));
    }
  };
  return (
    <div className="stack">
      <Panel title={t("set_new_token")}>
        <form className="form-row" onSubmit={create}>
          <Field label={t("set_token_name")}>
            <input required value={form.name} onChange={(e) => setForm({ ...form, name: e.target.value })} />
          </Field>
          <Field label={t("role")}>
            <select value={form.role} onChange={(e) => setForm({ ...form, role: e.target.value as Role })}>
              {ROLES.map((r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
            </select>
          </Field>
          <Field label={t("set_expires_in")}>
            <input value={form.expires_in} placeholder="30d" onChange={(e) => setForm({ ...form, expires_in: e.target.value })} />
          </Field>
          <button type="submit" className="btn btn-primary">
            {t("create")}
          </button>
        </form>
        {created ? (
          <div className="secret-once" role="status" data-testid="token-created">
            <p>{t("set_token_created")}</p>
            <div className="secret-row">
              <code className="mono" data-testid="token-value">
                {created.token}
              </code>
              <button
                type="button"
                className="btn btn-small"
                onClick={() => {
                  void navigator.clipboard?.writeText(created.token).then(() => setCopied(true));
                }}
              >
                {copied ? t("copied") : t("copy")}
              </button>
              <button type="button" className="btn btn-small btn-ghost" onClick={() => setCreated(undefined)}>
                {t("close")}
              </button>
            </div>
          </div>
        ) : null}
      </Panel>
      {error ? <ErrorBox message={error} /> : null}
      <Panel title={t("set_tokens")}>
        {tokens.error ? (
          <ErrorBox message={tokens.error} onRetry={tokens.reload} />
        ) : !tokens.data ? (
          <Loading />
        ) : tokens.data.length === 0 ? (
          <Empty title={t("set_no_tokens")} />
        ) : (
          <div className="table-wrap" tabIndex={0}>
            <table className="table" data-testid="tokens-table">
              <thead>
                <tr>
                  <th scope="col">{t("name")}</th>
                  <th scope="col">{t("set_prefix")}</th>
                  <th scope="col">{t("role")}</th>
                  <th scope="col">{t("status")}</th>
                  <th scope="col">{t("set_created_by")}</th>
                  <th scope="col">{t("set_last_used")}</th>
                  <th scope="col">{t("set_expires")}</th>
                  <th scope="col">{t("actions")}</th>
                </tr>
              </thead>
              <tbody>
                {tokens.data.map((token) => (
                  <tr key={token.id}>
                    <td>{token.name}</td>
                    <td className="mono">{token.prefix}…</td>
                    <td>{token.role}</td>
                    <td>
                      <Badge tone={token.status === "active" ? "ok" : "muted"}>{ts(token.status)}</Badge>
                    </td>
                    <td>{token.created_by}</td>
                    <td>{token.last_used_at ? formatAgo(token.last_used_at, locale) : t("set_never")}</td>
                    <td>{token.expires_at ? formatTime(token.expires_at, locale) : "—"}</td>
                    <td className="actions">
                      {token.status === "active" ? (
                        <button type="button" className="btn btn-small btn-danger" onClick={() => void revoke(token)}>
                          {t("set_revoke")}
                        </button>
                      ) : null}
                    </td>
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

function Audit() {
  const { t, ts, locale } = useI18n();
  const [actor, setActor] = useState("");
  const [action, setAction] = useState("");
  const [older, setOlder] = useState<AuditPage["entries"]>([]);
  const [cursor, setCursor] = useState<number | null | undefined>(undefined);
  const page = useLoad(
    (signal) => {
      const qs = new URLSearchParams({ limit: "50" });
      if (actor.trim()) qs.set("actor", actor.trim());
      if (action.trim()) qs.set("action", action.trim());
      setOlder([]);
      setCursor(undefined);
      return api.get<AuditPage>(`/api/v1/audit?${qs}`, signal);
    },
    [actor, action],
  );
  const more = async () => {
    const next = cursor === undefined ? page.data?.next_cursor : cursor;
    if (next === null || next === undefined) return;
    const qs = new URLSearchParams({ limit: "50", cursor: String(next) });
    if (actor.trim()) qs.set("actor", actor.trim());
    if (action.trim()) qs.set("action", action.trim());
    const result = await api.get<AuditPage>(`/api/v1/audit?${qs}`);
    setOlder((o) => [...o, ...result.entries]);
    setCursor(result.next_cursor);
  };
  const entries = [...(page.data?.entries ?? []), ...older];
  const nextCursor = cursor === undefined ? page.data?.next_cursor : cursor;
  return (
    <Panel
      title={t("set_audit")}
      actions={
        <div className="form-row compact">
          <input aria-label={t("au_filter_actor")} placeholder={t("au_filter_actor")} value={actor} onChange={(e) => setActor(e.target.value)} />
          <input aria-label={t("au_filter_action")} placeholder={t("au_filter_action")} value={action} onChange={(e) => setAction(e.target.value)} />
        </div>
      }
    >
      {page.error ? (
        <ErrorBox message={page.error} onRetry={page.reload} />
      ) : !page.data ? (
        <Loading />
      ) : (
        <>
          <div className="table-wrap" tabIndex={0}>
            <table className="table" data-testid="audit-table">
              <thead>
                <tr>
                  <th scope="col">{t("au_time")}</th>
                  <th scope="col">{t("au_actor")}</th>
                  <th scope="col">{t("au_action")}</th>
                  <th scope="col">{t("au_target")}</th>
                  <th scope="col">{t("au_outcome")}</th>
                  <th scope="col">{t("au_client")}</th>
                </tr>
              </thead>
              <tbody>
                {entries.map((entry) => (
                  <tr key={entry.id}>
                    <td className="nowrap">{formatTime(entry.at, locale)}</td>
                    <td>{entry.actor}</td>
                    <td className="mono">{entry.action}</td>
                    <td className="mono">{entry.target ?? "—"}</td>
                    <td>
                      <Badge tone={entry.outcome === "success" ? "ok" : entry.outcome === "failed" ? "bad" : "warn"}>
                        {ts(entry.outcome)} {entry.status}
                      </Badge>
                    </td>
                    <td className="mono">{entry.client_addr}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {nextCursor !== null && nextCursor !== undefined ? (
            <button type="button" className="btn" onClick={() => void more()}>
              {t("au_more")}
            </button>
          ) : null}
        </>
      )}
    </Panel>
  );
}

function Password() {
  const { t } = useI18n();
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [status, setStatus] = useState<{ ok: boolean; text: string }>();
  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    try {
      await api.post("/api/v1/auth/password", { current_password: current, new_password: next });
      setStatus({ ok: true, text: t("set_password_changed") });
      setCurrent("");
      setNext("");
    } catch (e) {
      setStatus({ ok: false, text: message(e) });
    }
  };
  return (
    <Panel title={t("set_password")}>
      <form className="form-row" onSubmit={submit}>
        <Field label={t("set_current_password")}>
          <input type="password" required autoComplete="current-password" value={current} onChange={(e) => setCurrent(e.target.value)} />
        </Field>
        <Field label={t("set_new_password")}>
          <input type="password" required minLength={8} autoComplete="new-password" value={next} onChange={(e) => setNext(e.target.value)} />
        </Field>
        <button type="submit" className="btn btn-primary">
          {t("save")}
        </button>
      </form>
      {status ? status.ok ? <p className="text-ok" role="status">{status.text}</p> : <ErrorBox message={status.text} /> : null}
    </Panel>
  );
}
