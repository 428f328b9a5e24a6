import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

// The console is served by the Rosetta API process at "/" (embedded with
// go:embed from dist/console); `npm run dev` proxies /api to a running
// `rosetta dev` (ROSETTA_API, default http://127.0.0.1:8080).
export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist/console",
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 700,
  },
  server: {
    proxy: { "/api": process.env.ROSETTA_API ?? "http://127.0.0.1:8080" },
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.{ts,tsx}"],
  },
});
