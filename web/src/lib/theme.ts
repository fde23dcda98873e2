// Dark and light: follows the system setting until the user picks one with the toggle.
import { useSyncExternalStore } from "react";

export type Theme = "dark" | "light";
type Preference = Theme | "system";

const media = typeof window !== "undefined" ? window.matchMedia("(prefers-color-scheme: dark)") : undefined;
let preference: Preference = readPreference();
const listeners = new Set<() => void>();

function readPreference(): Preference {
  const stored = typeof localStorage !== "undefined" ? localStorage.getItem("hubmon.theme") : null;
  return stored === "dark" || stored === "light" ? stored : "system";
}

export function effectiveTheme(): Theme {
  if (preference !== "system") return preference;
  return media?.matches ? "dark" : "light";
}

function apply(): void {
  document.documentElement.dataset.theme = effectiveTheme();
  listeners.forEach((l) => l());
}

media?.addEventListener("change", apply);

export function initTheme(): void {
  apply();
}

export function toggleTheme(): void {
  preference = effectiveTheme() === "dark" ? "light" : "dark";
  localStorage.setItem("hubmon.theme", preference);
  apply();
}

export function useTheme(): Theme {
  return useSyncExternalStore(
    (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    effectiveTheme,
    effectiveTheme,
  );
}
