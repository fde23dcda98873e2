import { useState } from "react";
import { api, ApiError } from "../lib/api";
import { setLang, useI18n } from "../lib/i18n";
import { toggleTheme, useTheme } from "../lib/theme";
import { Icon } from "../components/Icon";

export function LoginPage({ onLogin }: { onLogin: () => Promise<void> }) {
  const { t, lang } = useI18n();
  const theme = useTheme();
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await api.post("/api/v1/auth/login", { username, password });
      await onLogin();
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="login" data-testid="page-login">
      <div className="login-tools">
        <label className="visually-hidden" htmlFor="login-lang">
          {t("language")}
        </label>
        <select id="login-lang" className="lang-select" value={lang} onChange={(e) => setLang(e.target.value === "zh" ? "zh" : "en")}>
          <option value="en">English</option>
          <option value="zh">简体中文</option>
        </select>
        <button type="button" className="icon-btn" aria-label={t("theme_toggle")} onClick={toggleTheme}>
          <Icon name={theme === "dark" ? "sun" : "moon"} />
        </button>
      </div>
      <form className="login-card" onSubmit={submit}>
        <div className="brand brand-large">
          <span className="brand-mark" aria-hidden="true" />
          <span>hubmon</span>
        </div>
        <h1>{t("login_title")}</h1>
        <label className="field">
          <span className="field-label">{t("login_username")}</span>
          <input name="username" autoComplete="username" required autoFocus value={username} onChange={(e) => setUsername(e.target.value)} />
        </label>
        <label className="field">
          <span className="field-label">{t("login_password")}</span>
          <input
            name="password"
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
        </label>
        {error ? (
          <p className="error-box" role="alert">
            {error}
          </p>
        ) : null}
        <button type="submit" className="btn btn-primary btn-block" disabled={busy}>
          {busy ? t("login_signing_in") : t("login_submit")}
        </button>
        <p className="muted small">{t("login_hint")}</p>
      </form>
    </main>
  );
}
