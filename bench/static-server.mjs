// A static file server for the js-libp2p reference page, so that it loads
// the way ours does: over HTTP from 127.0.0.1 (a secure context, as
// WebCrypto needs), each file compressed as a static server's best setting
// would (brotli -q 11, else gzip -9, by Accept-Encoding), the HTML with
// `no-cache` and everything else cacheable for a year, as the relay serves
// our page (hashed names, `immutable`). It serves files under one
// directory only, and nothing else.

import { createServer } from 'node:http'
import { readFileSync } from 'node:fs'
import { extname, join, normalize, resolve, sep } from 'node:path'
import { brotliCompressSync, constants, gzipSync } from 'node:zlib'

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json'
}

// Starts serving `root` on 127.0.0.1 (a port the OS picks); resolves to
// `{ url, close() }`, `url` ending in `/`. The files `precompress` names
// (relative to `root`) are compressed before it listens, as a deployment
// would have them: compressing a bundle at brotli's best setting takes
// seconds, which a first load must not count.
export function serveStatic (root, precompress = []) {
  const base = resolve(root)
  const compressed = new Map()
  const encode = (path, encoding) => {
    const key = `${encoding} ${path}`
    if (!compressed.has(key)) {
      const raw = readFileSync(path)
      compressed.set(key, encoding === 'br'
        ? brotliCompressSync(raw, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } })
        : encoding === 'gzip' ? gzipSync(raw, { level: 9 }) : raw)
    }
    return compressed.get(key)
  }
  const server = createServer((request, response) => {
    let path
    try {
      path = normalize(join(base, decodeURIComponent(new URL(request.url, 'http://x').pathname)))
    } catch {
      response.writeHead(400).end() // a malformed percent-encoding
      return
    }
    const type = TYPES[extname(path)]
    if (!path.startsWith(base + sep) || type == null) {
      response.writeHead(404).end()
      return
    }
    const accepted = request.headers['accept-encoding'] ?? ''
    const encoding = /\bbr\b/.test(accepted) ? 'br' : /\bgzip\b/.test(accepted) ? 'gzip' : 'identity'
    let body
    try {
      body = encode(path, encoding)
    } catch {
      response.writeHead(404).end()
      return
    }
    const headers = {
      'content-type': type,
      'cache-control': extname(path) === '.html' ? 'no-cache' : 'public, max-age=31536000, immutable',
      'content-length': body.length,
      vary: 'accept-encoding'
    }
    if (encoding !== 'identity') headers['content-encoding'] = encoding
    response.writeHead(200, headers)
    response.end(body)
  })
  for (const file of precompress) {
    for (const encoding of ['br', 'gzip']) encode(join(base, file), encoding)
  }
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      resolve({
        url: `http://127.0.0.1:${server.address().port}/`,
        close: () => server.close()
      })
    })
  })
}
