import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

// The dashboard is served by the hubmon binary from the embedded web/dist; `npm run dev`
// proxies the API to a hubmon on 127.0.0.1:9550.
export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    // The first page must stay under 300 KB gzipped; scripts/bundle-size.mjs checks it.
    chunkSizeWarningLimit: 600,
  },
  server: {
    proxy: {
      "/api": { target: "http://127.0.0.1:9550", changeOrigin: false },
    },
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.ts", "src/**/*.test.tsx"],
  },
});
