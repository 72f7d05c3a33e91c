import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// Where `npm run dev` finds a running service (`chronicle serve`).
const service = process.env.CHRONICLE_URL ?? 'http://127.0.0.1:8000';

export default defineConfig({
  // The service serves the built app at /examples/storefront/.
  base: '/examples/storefront/',
  plugins: [react()],
  build: { outDir: 'dist', emptyOutDir: true },
  server: {
    // The app calls /graphql on its own origin: in development the dev server passes it on,
    // websockets too, so the service needs no CORS for the dev server's origin.
    proxy: {
      '/graphql': {
        target: service,
        changeOrigin: true,
        ws: true,
        // The service lets a browser open a websocket from its own origin only (or those of
        // CHRONICLE_ALLOWED_ORIGINS): present the proxied one as coming from there. Only for
        // development, where the page and the proxy are yours.
        rewriteWsOrigin: true,
      },
    },
  },
});
