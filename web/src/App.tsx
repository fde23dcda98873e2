import { useCallback, useEffect, useState, type ReactNode } from "react";
import { api, onUnauthenticated, readCookie, type Me } from "./lib/api";
import { useI18n, setLang, type Key } from "./lib/i18n";
import { LiveProvider, prefetchSummary, useLive, useLiveEvents } from "./lib/live";
import { handleLinkClick, navigate, useLocation } from "./lib/router";
import { SessionContext, useSession } from "./lib/session";
import { toggleTheme, useTheme } from "./lib/theme";
import { formatAgo } from "./lib/format";
import { Loading } from "./components/ui";
import { Icon, type IconName } from "./components/Icon";
import { LoginPage } from "./pages/Login";
import { OverviewPage } from "./pages/Overview";
import { SystemPage } from "./pages/System";
import { ApiPage } from "./pages/Api";
import { ExplorePage } from "./pages/Explore";
import { LogsPage } from "./pages/Logs";
import { AlertsPage } from "./pages/Alerts";
import { HealthPage } from "./pages/Health";
import { NotificationsPage } from "./pages/Notifications";
import { SettingsPage } from "./pages/Settings";
import { NotFoundPage } from "./pages/NotFound";

interface Page {
  path: string;
  title: Key;
  icon: IconName;
  render: () => ReactNode;
  /** An API path this page needs; the page is listed only when the server has it. */
  needs?: string;
}

export const PAGES: Page[] = [
  { path: "/", title: "nav_overview", icon: "overview", render: () => <OverviewPage /> },
  { path: "/system", title: "nav_system", icon: "system", render: () => <SystemPage /> },
  { path: "/api-traffic", title: "nav_api", icon: "api", render: () => <ApiPage /> },
  { path: "/alerts", title: "nav_alerts", icon: "alerts", render: () => <AlertsPage />, needs: "/api/v1/monitoring/alerts" },
  { path: "/health", title: "nav_health", icon: "health", render: () => <HealthPage />, needs: "/api/v1/monitoring/health" },
  { path: "/logs", title: "nav_logs", icon: "logs", render: () => <LogsPage />, needs: "/api/v1/logs/search" },
  {
    path: "/notifications",
    title: "nav_notifications",
    icon: "notifications",
    render: () => <NotificationsPage />,
    needs: "/api/v1/inbox",
  },
  { path: "/explore", title: "nav_explore", icon: "explore", render: () => <ExplorePage /> },
  { path: "/settings", title: "nav_settings", icon: "settings", render: () => <SettingsPage /> },
];

export function App() {
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  const [paths, setPaths] = useState<Set<string>>(new Set());

  const loadSession = useCallback(async () => {
    // No CSRF cookie means no session: show the login without a request that must fail.
    if (!readCookie("hubmon_csrf")) {
      setMe(null);
      return;
    }
    prefetchSummary();
    // Both at once: the OpenAPI document only decides which pages the sidebar lists.
    const doc = api.get<{ paths: Record<string, unknown> }>("/api/openapi.json").catch(() => ({ paths: {} }));
    try {
      const who = await api.get<Me>("/api/v1/auth/me");
      setPaths(new Set(Object.keys((await doc).paths)));
      setMe(who);
    } catch {
      setMe(null);
    }
  }, []);

  useEffect(() => {
    void loadSession();
    return onUnauthenticated(() => setMe(null));
  }, [loadSession]);

  const logout = useCallback(async () => {
    try {
      await api.post("/api/v1/auth/logout");
    } finally {
      setMe(null);
      navigate("/login");
    }
  }, []);

  if (me === undefined) {
    return (
      <div className="boot">
        <Loading />
      </div>
    );
  }
  if (me === null) {
    return <LoginPage onLogin={loadSession} />;
  }
  return (
    <SessionContext.Provider value={{ me, paths, logout: () => void logout() }}>
      <LiveProvider>
        <Shell />
      </LiveProvider>
    </SessionContext.Provider>
  );
}

function Shell() {
  const { t } = useI18n();
  const { path } = useLocation();
  const session = useSession();
  const [navOpen, setNavOpen] = useState(false);
  const pages = PAGES.filter((p) => !p.needs || session.paths.has(p.needs));
  const page = path === "/login" ? pages[0] : pages.find((p) => p.path === path);

  useEffect(() => {
    if (path === "/login") navigate("/", { replace: true });
  }, [path]);
  useEffect(() => {
    document.title = page ? `${t(page.title)} · hubmon` : "hubmon";
    setNavOpen(false);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [page]);

  return (
    <div className={"shell" + (navOpen ? " nav-open" : "")}>
      <a className="skip-link" href="#main">
        {t("skip_to_content")}
      </a>
      <aside className="sidebar" id="sidebar">
        <div className="brand">
          <span className="brand-mark" aria-hidden="true" />
          <span>hubmon</span>
        </div>
        <nav aria-label={t("nav_main")}>
          <ul>
            {pages.map((p) => (
              <li key={p.path}>
                <a
                  href={p.path}
                  onClick={handleLinkClick}
                  className={p === page ? "active" : ""}
                  aria-current={p === page ? "page" : undefined}
                >
                  <Icon name={p.icon} />
                  <span>{t(p.title)}</span>
                </a>
              </li>
            ))}
          </ul>
        </nav>
      </aside>
      <div className="scrim" onClick={() => setNavOpen(false)} aria-hidden="true" />
      <div className="main-col">
        <Header
          title={page ? t(page.title) : t("not_found_title")}
          navOpen={navOpen}
          onToggleNav={() => setNavOpen((o) => !o)}
        />
        <main id="main" tabIndex={-1}>
          {page ? page.render() : <NotFoundPage path={path} />}
        </main>
      </div>
    </div>
  );
}

function Header({ title, navOpen, onToggleNav }: { title: string; navOpen: boolean; onToggleNav: () => void }) {
  const { t, lang, locale } = useI18n();
  const theme = useTheme();
  const session = useSession();
  const { me, logout } = session;
  const live = useLive();
  const [, force] = useState(0);
  useEffect(() => {
    const timer = window.setInterval(() => force((n) => n + 1), 10_000);
    return () => window.clearInterval(timer);
  }, []);
  return (
    <header className="topbar">
      <button
        type="button"
        className="icon-btn nav-toggle"
        aria-label={navOpen ? t("nav_close") : t("nav_open")}
        aria-expanded={navOpen}
        aria-controls="sidebar"
        onClick={onToggleNav}
      >
        <Icon name="menu" />
      </button>
      <h1 className="page-title">{title}</h1>
      <div className="topbar-right">
        <span
          className={"live-pill " + live.status}
          role="status"
          title={live.receivedAt ? t("updated", { ago: formatAgo(live.receivedAt, locale) }) : undefined}
          data-testid="live-status"
        >
          <span className="dot" aria-hidden="true" />
          {live.status === "live" ? t("live") : live.status === "reconnecting" ? t("live_reconnecting") : t("live_connecting")}
        </span>
        <label className="visually-hidden" htmlFor="lang-select">
          {t("language")}
        </label>
        <select
          id="lang-select"
          className="lang-select"
          value={lang}
          onChange={(e) => setLang(e.target.value === "zh" ? "zh" : "en")}
        >
          <option value="en">English</option>
          <option value="zh">简体中文</option>
        </select>
        <button
          type="button"
          className="icon-btn"
          aria-label={t("theme_toggle")}
          title={theme === "dark" ? t("theme_light") : t("theme_dark")}
          onClick={toggleTheme}
          data-testid="theme-toggle"
        >
          <Icon name={theme === "dark" ? "sun" : "moon"} />
        </button>
        {session.paths.has("/api/v1/inbox/unread-count") ? <InboxBell /> : null}
        <div className="user-chip" title={t("signed_in_as", { name: me.name, role: me.role })}>
          <span className="avatar" aria-hidden="true">
            {me.name.slice(0, 1).toUpperCase()}
          </span>
          <span className="user-name">{me.name}</span>
          <span className="user-role">{me.role}</span>
        </div>
        <button type="button" className="btn btn-small btn-ghost" onClick={logout}>
          {t("logout")}
        </button>
      </div>
    </header>
  );
}

/** The inbox with its unread count, refreshed on inbox events and every few live ticks. */
function InboxBell() {
  const { t } = useI18n();
  const { tick } = useLive();
  const [unread, setUnread] = useState(0);
  const [generation, setGeneration] = useState(0);
  useLiveEvents((type) => {
    if (type === "inbox") setGeneration((g) => g + 1);
  });
  useEffect(() => {
    const bump = () => setGeneration((g) => g + 1);
    window.addEventListener("hubmon:inbox", bump);
    return () => window.removeEventListener("hubmon:inbox", bump);
  }, []);
  const every = Math.floor(tick / 5);
  useEffect(() => {
    const controller = new AbortController();
    api
      .get<{ unread: number }>("/api/v1/inbox/unread-count", controller.signal)
      .then((r) => setUnread(r.unread))
      .catch(() => undefined);
    return () => controller.abort();
  }, [every, generation]);
  return (
    <a
      href="/notifications"
      onClick={handleLinkClick}
      className="icon-btn bell"
      aria-label={t("nt_unread", { n: unread })}
      title={t("nt_unread", { n: unread })}
      data-testid="inbox-bell"
    >
      <Icon name="bell" />
      {unread > 0 ? <span className="count">{unread > 99 ? "99+" : unread}</span> : null}
    </a>
  );
}
