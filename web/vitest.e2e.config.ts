import { defineConfig } from "vitest/config";

// The browser suite: real hubmon binary, real Chromium (Debian's), driven by playwright-core.
export default defineConfig({
  test: {
    environment: "node",
    include: ["e2e/**/*.spec.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    sequence: { concurrent: false },
  },
});
