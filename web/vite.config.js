import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

// Built into the Python package, so `pip install` needs no node. The service serves
// index.html at GET /graphql and everything else under /graphiql/.
export default defineConfig({
  base: "/graphiql/",
  build: {
    outDir: fileURLToPath(new URL("../api/static/graphiql", import.meta.url)),
    emptyOutDir: true,
    // Small icons become data: URLs; fonts and workers stay files of their own.
    assetsInlineLimit: 4096,
    chunkSizeWarningLimit: 8192,
    sourcemap: false,
    rollupOptions: {
      onwarn(warning, warn) {
        // React's "use client" markers mean nothing in a bundle.
        if (warning.code !== "MODULE_LEVEL_DIRECTIVE") warn(warning);
      },
    },
  },
  worker: { format: "es" },
});
