import { defineConfig } from 'vite';

/**
 * The dashboard SPA: `npm run build:web` → web/dist, served by Postbote at / (src/dashboard/).
 * Preact's automatic JSX runtime; hashed file names under assets/ (cached for a year); no
 * source maps in the build (they would double what is served); no network needed to build.
 */
export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: false,
    target: 'es2022',
    // One small bundle is enough: code splitting would add round trips for a few kB.
    chunkSizeWarningLimit: 200,
  },
});
