import { defineConfig } from 'vite';

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
      '/api': 'http://localhost:3200',
      '/loki': 'http://localhost:3200',
      '/ui/config.json': 'http://localhost:3200',
    },
  },
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
  },
} as any);
