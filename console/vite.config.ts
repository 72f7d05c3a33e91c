import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// Where `npm run dev` finds a running service (`chronicle serve`).
const service = process.env.CHRONICLE_URL ?? 'http://127.0.0.1:8000';

// Built into the Python package, so `pip install` needs no node: the service serves
// index.html at /console and everything else under /console/assets/.
export default defineConfig({
  base: '/console/',
  plugins: [react()],
  build: {
    outDir: fileURLToPath(new URL('../api/static/console', import.meta.url)),
    emptyOutDir: true,
    sourcemap: false,
  },
  server: {
    proxy: {
      '/graphql': { target: service, changeOrigin: true, ws: true, rewriteWsOrigin: true },
    },
  },
});
