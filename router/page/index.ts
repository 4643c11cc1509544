// The live topology page on the metrics address: GET / (HTML), /page.css,
// /page.js and /topology.json (the model, read fresh on every request).
// Read-only: MetricsServer answers anything but GET/HEAD with 405, and any
// other path falls through to its 404.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { StatusJson } from '../status.js';
import { PAGE_CSS, PAGE_HTML, PAGE_JS } from './assets.js';
import { pageModel } from './model.js';

export { pageModel, connectionKind, LINK_STYLE, type PageModel, type PageLink, type PageNode, type LinkKind } from './model.js';

/** Everything the page loads comes from here; nothing inline, nothing from elsewhere. */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function send(res: ServerResponse, type: string, body: string, head: boolean): void {
  res.writeHead(200, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'content-security-policy': CSP,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  });
  res.end(head ? undefined : body);
}

/** A MetricsServer page handler: true when it answered. */
export function topologyPages(status: () => StatusJson): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const head = req.method === 'HEAD';
    switch (path) {
      case '/':
      case '/index.html':
        send(res, 'text/html; charset=utf-8', PAGE_HTML, head);
        return true;
      case '/page.css':
        send(res, 'text/css; charset=utf-8', PAGE_CSS, head);
        return true;
      case '/page.js':
        send(res, 'text/javascript; charset=utf-8', PAGE_JS, head);
        return true;
      case '/topology.json':
        send(res, 'application/json', JSON.stringify(pageModel(status())), head);
        return true;
      default:
        return false;
    }
  };
}
