import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// The build lands in gpm/api/static/, which the API serves at "/" on both of its ports.
// A relative base keeps asset URLs working whichever port or prefix serves the page.
export default defineConfig({
  plugins: [react()],
  base: "./",
  build: {
    outDir: "../gpm/api/static",
    emptyOutDir: true,
    chunkSizeWarningLimit: 600,
  },
  server: {
    // `npm run dev` talks to a running `gpm run` on the default API port.
    proxy: { "/api": "http://127.0.0.1:8010" },
  },
  test: {
    environment: "jsdom",
    globals: true,
    include: ["src/**/*.test.{ts,tsx}"],
  },
});
