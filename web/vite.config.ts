import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// The dashboard's build (web/dist, served by the gateway at /). `npx vite --config web/vite.config.ts`
// serves it with hot reload and forwards the API to a running Runway (RUNWAY_URL, default :8080).
const target = process.env.RUNWAY_URL ?? 'http://127.0.0.1:8080';
const proxy = { target, changeOrigin: false, ws: false };

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  server: {
    host: '127.0.0.1',
    port: 5173,
    proxy: { '/api': proxy, '/auth': proxy },
  },
});
