// The one way the dashboard talks to hubmon: same-origin fetch with the session cookie, the
// CSRF token on mutating calls, and hubmon's error shape turned into an ApiError.

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

type Listener = () => void;
const unauthenticatedListeners = new Set<Listener>();

/** Called whenever a call answers 401, so the app can show the login page. */
export function onUnauthenticated(listener: Listener): () => void {
  unauthenticatedListeners.add(listener);
  return () => unauthenticatedListeners.delete(listener);
}

export function readCookie(name: string, cookies: string = document.cookie): string | undefined {
  for (const part of cookies.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return undefined;
}

/** Turns any error body hubmon (or its Prometheus API) sends into a message. */
export function errorMessage(status: number, body: unknown): { code: string; message: string } {
  if (body && typeof body === "object") {
    const record = body as Record<string, unknown>;
    const inner = record.error;
    if (inner && typeof inner === "object") {
      const e = inner as Record<string, unknown>;
      return { code: String(e.code ?? "error"), message: String(e.message ?? `HTTP ${status}`) };
    }
    if (typeof inner === "string") {
      return { code: String(record.errorType ?? "error"), message: inner };
    }
  }
  return { code: "http_" + status, message: `HTTP ${status}` };
}

export async function request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD") {
    const csrf = readCookie("hubmon_csrf");
    if (csrf) headers["X-CSRF-Token"] = csrf;
  }
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    signal,
  });
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let parsed: unknown = undefined;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
  }
  if (!response.ok) {
    if (response.status === 401 && !path.endsWith("/auth/login")) {
      unauthenticatedListeners.forEach((l) => l());
    }
    const { code, message } = errorMessage(response.status, parsed);
    throw new ApiError(response.status, code, message);
  }
  return parsed as T;
}

export const api = {
  get: <T>(path: string, signal?: AbortSignal) => request<T>("GET", path, undefined, signal),
  post: <T>(path: string, body?: unknown) => request<T>("POST", path, body ?? {}),
  patch: <T>(path: string, body: unknown) => request<T>("PATCH", path, body),
  put: <T>(path: string, body: unknown) => request<T>("PUT", path, body),
  del: <T>(path: string) => request<T>("DELETE", path),
};

// ---- hubmon's types, as its API serialises them -------------------------------------------

export type Role = "viewer" | "editor" | "admin" | "ingest";

export interface Me {
  kind: "user" | "token";
  id: number;
  name: string;
  role: Role;
  csrf_token?: string;
}

export interface User {
  id: number;
  username: string;
  role: Role;
  disabled: boolean;
  created_at: string;
  updated_at: string;
  last_login_at: string | null;
}

export interface Token {
  id: number;
  name: string;
  prefix: string;
  role: Role;
  created_by: string;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
  status: "active" | "expired" | "revoked";
}

export interface CreatedToken extends Token {
  token: string;
}

export interface AuditEntry {
  id: number;
  at: string;
  actor: string;
  actor_role: Role | null;
  action: string;
  target: string | null;
  summary: unknown;
  client_addr: string;
  request_id: string | null;
  outcome: string;
  status: number;
}

export interface AuditPage {
  entries: AuditEntry[];
  next_cursor: number | null;
}

/** A part of the summary whose module may not be running (or not built yet). */
export type Section<T> = ({ state: "available" } & T) | { state: "unavailable"; reason: string };

export interface Summary {
  generated_at: string;
  health: Section<{
    status: "healthy" | "degraded" | "unhealthy" | "unknown";
    healthy: number;
    degraded: number;
    unhealthy: number;
    unknown: number;
  }>;
  alerts: Section<{ critical: number; error: number; warning: number; info: number; pending: number }>;
  host: Section<{
    cpu_percent: number | null;
    memory_percent: number | null;
    disk_percent: number | null;
    load1: number | null;
    cpu_cores: number | null;
  }>;
  api: Section<{
    requests_per_second: number | null;
    error_rate: number | null;
    p95_seconds: number | null;
    active_keys: number | null;
  }>;
  logs: Section<{ errors_5m: number }>;
  notifications: Section<{ failed_24h: number }>;
}

// ---- the Prometheus query API --------------------------------------------------------------

export type Metric = Record<string, string>;
export interface RangeSeries {
  metric: Metric;
  values: [number, string][];
}
export interface InstantSample {
  metric: Metric;
  value: [number, string];
}

export type InstantResult =
  | { resultType: "vector"; result: InstantSample[] }
  | { resultType: "matrix"; result: RangeSeries[] }
  | { resultType: "scalar" | "string"; result: [number, string] };

interface PromResponse<T> {
  status: "success" | "error";
  data: T;
}

function form(params: Record<string, string>): string {
  return new URLSearchParams(params).toString();
}

export async function queryRange(
  query: string,
  start: number,
  end: number,
  step: number,
  signal?: AbortSignal,
): Promise<RangeSeries[]> {
  const qs = form({ query, start: String(start), end: String(end), step: String(step) });
  const body = await api.get<PromResponse<{ result: RangeSeries[] }>>(`/api/v1/query_range?${qs}`, signal);
  return body.data.result;
}

export async function queryInstant(query: string, time?: number, signal?: AbortSignal): Promise<InstantResult> {
  const params: Record<string, string> = { query };
  if (time !== undefined) params.time = String(time);
  const body = await api.get<PromResponse<InstantResult>>(`/api/v1/query?${form(params)}`, signal);
  return body.data;
}

/** Step (seconds) giving about `points` points over the range, at least 1 s. */
export function stepFor(seconds: number, points = 240): number {
  const raw = Math.max(1, seconds / points);
  const nice = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400];
  return nice.find((n) => n >= raw) ?? Math.ceil(raw);
}
