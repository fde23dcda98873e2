// One server-sent-events stream per tab (`/api/v1/monitoring/stream`): the summary every few
// seconds plus module events. When the stream drops, the summary is polled every 30 s and the
// header says "reconnecting" until the stream is back.
import { createContext, useContext, useEffect, useRef, useState, type ReactNode } from "react";
import { api, type Summary } from "./api";

export type LiveStatus = "connecting" | "live" | "reconnecting";

export interface LiveState {
  summary: Summary | undefined;
  status: LiveStatus;
  /** Increments on every summary received (stream or poll): pages refresh their data on it. */
  tick: number;
  /** Last time a summary arrived (ms). */
  receivedAt: number;
}

const LiveContext = createContext<LiveState>({ summary: undefined, status: "connecting", tick: 0, receivedAt: 0 });

type EventListener = (type: string, data: unknown) => void;
const eventListeners = new Set<EventListener>();

/** Module events other than the summary (alert, health, inbox, log) as they arrive. */
export function useLiveEvents(listener: EventListener): void {
  const ref = useRef(listener);
  useEffect(() => {
    ref.current = listener;
  });
  useEffect(() => {
    const forward: EventListener = (type, data) => ref.current(type, data);
    eventListeners.add(forward);
    return () => {
      eventListeners.delete(forward);
    };
  }, []);
}

export const POLL_INTERVAL_MS = 30_000;

let early: Promise<Summary> | undefined;

/** Starts loading the summary while the session is still being checked, to paint sooner. */
export function prefetchSummary(): void {
  early = api.get<Summary>("/api/v1/monitoring/summary");
  early.catch(() => undefined);
}
const MODULE_EVENTS = ["alert", "health", "inbox", "notification", "log"];

export function LiveProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState<LiveState>({ summary: undefined, status: "connecting", tick: 0, receivedAt: 0 });

  useEffect(() => {
    let closed = false;
    let poller: number | undefined;
    const accept = (summary: Summary) =>
      setState((s) => ({ ...s, summary, tick: s.tick + 1, receivedAt: Date.now() }));
    const poll = async () => {
      try {
        accept(await api.get<Summary>("/api/v1/monitoring/summary"));
      } catch {
        // The next poll or the stream will try again; the header already says reconnecting.
      }
    };
    const startPolling = () => {
      if (poller === undefined) {
        void poll();
        poller = window.setInterval(poll, POLL_INTERVAL_MS);
      }
    };
    const stopPolling = () => {
      if (poller !== undefined) window.clearInterval(poller);
      poller = undefined;
    };

    early?.then((summary) => {
      if (!closed) setState((s) => (s.summary ? s : { ...s, summary, tick: s.tick + 1, receivedAt: Date.now() }));
    }, () => undefined);
    early = undefined;
    const source = new EventSource("/api/v1/monitoring/stream");
    source.addEventListener("open", () => {
      stopPolling();
      setState((s) => ({ ...s, status: "live" }));
    });
    source.addEventListener("summary", (event) => {
      try {
        accept(JSON.parse((event as MessageEvent<string>).data) as Summary);
        setState((s) => (s.status === "live" ? s : { ...s, status: "live" }));
      } catch {
        // A malformed event is skipped; the next one replaces it.
      }
    });
    for (const type of MODULE_EVENTS) {
      source.addEventListener(type, (event) => {
        let data: unknown;
        try {
          data = JSON.parse((event as MessageEvent<string>).data);
        } catch {
          return;
        }
        eventListeners.forEach((l) => l(type, data));
      });
    }
    // Fell behind on events: tell every listener to reload, as if each kind had changed.
    source.addEventListener("lagged", () => {
      for (const type of MODULE_EVENTS) eventListeners.forEach((l) => l(type, undefined));
    });
    source.addEventListener("error", () => {
      if (closed) return;
      setState((s) => ({ ...s, status: "reconnecting" }));
      startPolling();
    });
    return () => {
      closed = true;
      source.close();
      stopPolling();
    };
  }, []);

  return <LiveContext.Provider value={state}>{children}</LiveContext.Provider>;
}

export function useLive(): LiveState {
  return useContext(LiveContext);
}
