// Starts the real hubmon binary on a free port with a fresh data dir, and Chromium through
// playwright-core. HUBMON_BIN picks the binary (default: target/release/hubmon, else
// target/debug/hubmon); CHROMIUM the browser (default /usr/bin/chromium).
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";

export const ROOT = resolve(import.meta.dirname, "../..");
export const ARTIFACTS = resolve(ROOT, "target/web-e2e");
export const ADMIN_PASSWORD = "e2e-admin-password";

function binary(): string {
  const candidates = [process.env.HUBMON_BIN, join(ROOT, "target/release/hubmon"), join(ROOT, "target/debug/hubmon")];
  for (const candidate of candidates) if (candidate && existsSync(candidate)) return candidate;
  throw new Error("no hubmon binary: build one (cargo build --release -p hubmon) or set HUBMON_BIN");
}

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (address && typeof address === "object" ? ok(address.port) : fail(new Error("no port"))));
    });
  });
}

export interface Hubmon {
  base: string;
  process: ChildProcess;
  log: string[];
  stop: () => Promise<void>;
}

export async function startHubmon(): Promise<Hubmon> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "hubmon-web-e2e-"));
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("HUBMON_")) env[k] = v;
  env.HUBMON_ADMIN_PASSWORD = ADMIN_PASSWORD;
  // Collect host metrics often, so charts have several points within the test.
  env.HUBMON_HOST_INTERVAL = "1s";
  env.HUBMON_HTTP_RECORD_INTERVAL = "1s";
  // Evaluate rules and run the built-in health checks often, so alerts and statuses appear quickly.
  env.HUBMON_ALERTING_EVALUATION_INTERVAL = "2s";
  env.HUBMON_ALERTING_GROUP_WAIT = "1s";
  env.HUBMON_CHECK_INTERVAL = "2s";
  const child = spawn(binary(), ["serve", "--listen", `127.0.0.1:${port}`, "--data-dir", join(dir, "data")], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const log: string[] = [];
  child.stdout?.on("data", (d: Buffer) => log.push(d.toString()));
  child.stderr?.on("data", (d: Buffer) => log.push(d.toString()));
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const response = await fetch(base + "/readyz");
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null) throw new Error("hubmon exited at start:\n" + log.join(""));
    if (Date.now() > deadline) throw new Error("hubmon not ready after 30 s:\n" + log.join(""));
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base,
    process: child,
    log,
    stop: async () => {
      await new Promise<void>((ok) => {
        if (child.exitCode !== null) return ok();
        child.once("exit", () => ok());
        child.kill("SIGTERM");
      });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}

/** Console errors and uncaught exceptions of a page, to assert there are none. */
export function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (error) => errors.push(`pageerror: ${error.message}`));
  return errors;
}

export async function screenshot(page: Page, name: string, fullPage = true): Promise<string> {
  const dir = join(ARTIFACTS, "screenshots");
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.png`);
  await page.screenshot({ path, fullPage });
  return path;
}
