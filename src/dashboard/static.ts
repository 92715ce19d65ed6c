import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where `npm run build:web` puts the built dashboard (vite.config.ts: outDir). */
export const WEB_DIST = fileURLToPath(new URL('../../web/dist/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
};

export interface Asset {
  body: Buffer;
  type: string;
  /** Hashed names (assets/…) never change content: cached for a year; the rest revalidates. */
  immutable: boolean;
}

// The built dashboard is a few files; a bound keeps a stray directory from filling memory.
const MAX_FILES = 200;
const MAX_BYTES = 20 * 1024 * 1024;

/**
 * The built dashboard, read into memory once (URL path → file). Only files found here are
 * served, so no request path ever reaches the file system (no traversal to worry about).
 * An empty map when the dashboard is not built.
 */
export function loadAssets(dir: string = WEB_DIST): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  if (!existsSync(join(dir, 'index.html'))) return assets;
  let total = 0;
  const walk = (at: string): void => {
    for (const name of readdirSync(at).sort()) {
      const path = join(at, name);
      const stat = statSync(path);
      if (stat.isDirectory()) {
        walk(path);
        continue;
      }
      const type = TYPES[extname(name).toLowerCase()];
      if (!stat.isFile() || type === undefined) continue;
      total += stat.size;
      if (assets.size >= MAX_FILES || total > MAX_BYTES) {
        throw new Error(
          `${dir} holds more than ${MAX_FILES} files or ${MAX_BYTES} bytes: not a dashboard build`,
        );
      }
      const url = `/${relative(dir, path).split(sep).join('/')}`;
      assets.set(url, { body: readFileSync(path), type, immutable: url.startsWith('/assets/') });
    }
  };
  walk(dir);
  return assets;
}

/**
 * The dashboard page's Content Security Policy. Scripts only from us; inline styles allowed
 * (charts and e-mail previews set them); images from anywhere, because a previewed e-mail that
 * the user asked to show with remote content loads them (the preview's own policy blocks them
 * otherwise: web/src/components/MessagePreview.tsx); no framing of the dashboard itself.
 */
export const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: https: http:",
  "font-src 'self' data: https: http:",
  "connect-src 'self'",
  "frame-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');
