import { defineConfig } from 'vite';

// `npm run dev` proxies the APIs to a running sprout (SPROUT_URL, default http://localhost:3200).
const api = (globalThis as any).process?.env?.SPROUT_URL || 'http://localhost:3200';

// The UI is served by the sprout_ui extension under /ui/ on the API port, so every asset URL is absolute under
// /ui/. Output file names carry content hashes (immutable caching) and the build is deterministic, so that
// scripts/check-dist.sh can rebuild and diff against the committed dist/.
export default defineConfig({
  base: '/ui/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    target: 'es2022',
    modulePreload: { polyfill: false },
    reportCompressedSize: true,
  },
  server: {
    proxy: {
      '/api': api,
      '/loki': api,
      '/prometheus': api,
      '/alertmanager': api,
      '/ui/config.json': api,
    },
  },
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
  },
} as any);
