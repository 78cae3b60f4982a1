// Gives the names that tie the page's wasm to its JS glue short names, in
// both files alike (scripts/build-page runs it after esbuild).
//
// wasm-bindgen names each import after what it binds and a hash,
// `__wbg_set_bufferedAmountLowThreshold_649a569c0fb51336`, under the module
// `./web-peer_bg.js` (188 imports: 9.5 KB of names in the wasm, and the
// same names again as the keys of the glue's import object, the hashes
// barely compressible), and the exports it makes for the glue after their
// Rust types (`wasm_bindgen_..._closure__destroy___dyn_core_..._FnMut_...`).
// The names mean nothing at run time: the wasm asks for each import by
// (module, name), which only the glue's object answers, and the glue reads
// each export as a property of the instance. So both files get the same
// short names: `a`, `b`, ... for imports, `_a`, `_b`, ... for exports. The
// page's own exports (`start`) and the memory keep theirs. BENCHMARKS.md,
// "Page weight".
//
// It refuses, and changes nothing, unless each import is named once in the
// glue, as a key of the import object, each renamed export only as a
// property, and the module once: a glue that wasm-bindgen lays out
// differently one day fails the build, not the page.
//
//   node tools/shorten-glue-names.mjs <page>_bg.wasm <page>.js

import { readFileSync, writeFileSync } from 'node:fs'

const [wasmPath, jsPath] = process.argv.slice(2)
if (wasmPath == null || jsPath == null) {
  console.error('usage: shorten-glue-names.mjs <wasm> <js glue>')
  process.exit(2)
}

const fail = (message) => {
  console.error(`shorten-glue-names: ${message}; ${wasmPath} and ${jsPath} are left as they were`)
  process.exit(1)
}

function readLeb (bytes, at) {
  let value = 0
  let shift = 0
  for (;;) {
    if (at >= bytes.length || shift > 35) fail('the wasm is truncated or malformed')
    const byte = bytes[at++]
    value += (byte & 0x7f) * 2 ** shift
    shift += 7
    if (byte < 0x80) return [value, at]
  }
}

function leb (value) {
  const out = []
  do {
    let byte = value & 0x7f
    value = Math.floor(value / 128)
    if (value !== 0) byte |= 0x80
    out.push(byte)
  } while (value !== 0)
  return out
}

const utf8 = (text) => [...Buffer.from(text, 'utf8')]
const name = (text) => [...leb(Buffer.byteLength(text)), ...utf8(text)]

// `a` ... `z`, `A` ... `Z`, then `aa`, `ab`, ...: short and valid as object
// keys.
const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'
function shortName (index) {
  let text = ''
  let n = index
  do {
    text = LETTERS[n % LETTERS.length] + text
    n = Math.floor(n / LETTERS.length) - 1
  } while (n >= 0)
  return text
}

const wasm = readFileSync(wasmPath)
if (wasm.readUInt32LE(0) !== 0x6d736100) fail('not a wasm module')

// Finds the import section and reads its entries: each entry's names, and
// its description (kind and type) as raw bytes, kept as they are.
const sections = new Map()
for (let at = 8; at < wasm.length;) {
  const id = wasm[at]
  const [size, body] = readLeb(wasm, at + 1)
  sections.set(id, { start: at, body, end: body + size })
  at = body + size
}
const section = sections.get(2)
const exportSection = sections.get(7)
if (section == null || exportSection == null) fail('the wasm has no import or no export section')
if (section.start > exportSection.start) fail('the import section comes after the export section')

const imports = []
let [count, cursor] = readLeb(wasm, section.body)
for (let i = 0; i < count; i++) {
  let length
  ;[length, cursor] = readLeb(wasm, cursor)
  const module = wasm.subarray(cursor, cursor + length).toString('utf8')
  cursor += length
  ;[length, cursor] = readLeb(wasm, cursor)
  const field = wasm.subarray(cursor, cursor + length).toString('utf8')
  cursor += length
  const descStart = cursor
  const kind = wasm[cursor++]
  if (kind !== 0) fail(`import ${module}.${field} is not a function (kind ${kind})`)
  ;[, cursor] = readLeb(wasm, cursor)
  imports.push({ module, field, desc: wasm.subarray(descStart, cursor) })
}
if (cursor !== section.end) fail('the import section has bytes past its entries')

const modules = new Set(imports.map((entry) => entry.module))
if (modules.size !== 1) fail(`the imports come from ${modules.size} modules, not one`)
const [module] = modules
const fields = new Set(imports.map((entry) => entry.field))
if (fields.size !== imports.length) fail('two imports have the same name')
// The new names must not be old ones, or a later rename would find them.
if (imports.some((entry) => /^[a-zA-Z]{1,3}$/.test(entry.field))) fail('an import already has a short name')

// The glue: the module's key once, each field as a whole identifier.
let js = readFileSync(jsPath, 'utf8')
const quotedModule = JSON.stringify(module)
if (js.split(quotedModule).length !== 2) fail(`the glue names ${quotedModule} other than once`)
const SHORT_MODULE = 'm'
js = js.replace(quotedModule, JSON.stringify(SHORT_MODULE))
// Each name once, as a key of the import object (`{name:` or `,name:`),
// and nowhere else: a key cannot clash with the minified glue's own names.
const escape = (text) => text.replace(/[$]/g, '\\$')
const renamed = new Map()
imports.forEach((entry, index) => {
  const short = shortName(index)
  const anywhere = new RegExp(`(?<![\\w$])${escape(entry.field)}(?![\\w$])`, 'g')
  const asKey = new RegExp(`(?<=[{,])${escape(entry.field)}(?=:)`)
  const found = js.match(anywhere)?.length ?? 0
  if (found !== 1 || !asKey.test(js)) {
    fail(`the glue names ${entry.field} ${found} times, not once as a key of the import object`)
  }
  js = js.replace(asKey, short)
  renamed.set(entry.field, short)
})

// The exports wasm-bindgen made for its own glue (closures' invoke and
// destroy shims, named after their Rust types; malloc, realloc, ...):
// the glue reads each as a property of the instance's exports, `.name`.
// The page's own exports (`start`) and the memory keep their names.
const exports = []
;[count, cursor] = readLeb(wasm, exportSection.body)
for (let i = 0; i < count; i++) {
  let length
  ;[length, cursor] = readLeb(wasm, cursor)
  const field = wasm.subarray(cursor, cursor + length).toString('utf8')
  cursor += length
  const descStart = cursor
  cursor += 1
  ;[, cursor] = readLeb(wasm, cursor)
  exports.push({ field, desc: wasm.subarray(descStart, cursor) })
}
if (cursor !== exportSection.end) fail('the export section has bytes past its entries')
const GLUE_EXPORT = /^(wasm_bindgen_|__wbindgen_|__externref_)/
if (exports.some((entry) => !GLUE_EXPORT.test(entry.field) && /^_?[a-zA-Z]{1,3}$/.test(entry.field))) {
  fail('an export of the page already has a short name')
}
let nextExport = 0
for (const entry of exports) {
  if (!GLUE_EXPORT.test(entry.field)) continue
  const short = `_${shortName(nextExport++)}`
  const anywhere = new RegExp(`(?<![\\w$])${escape(entry.field)}(?![\\w$])`, 'g')
  const asProperty = new RegExp(`(?<=\\.)${escape(entry.field)}(?![\\w$])`, 'g')
  const found = js.match(anywhere)?.length ?? 0
  if (found === 0 || js.match(asProperty)?.length !== found) {
    fail(`the glue names ${entry.field} ${found} times, not always as a property`)
  }
  js = js.replace(asProperty, short)
  entry.field = short
}

const entries = imports.flatMap((entry) => [
  ...name(SHORT_MODULE), ...name(renamed.get(entry.field)), ...entry.desc
])
const body = [...leb(imports.length), ...entries]
const exportBody = [
  ...leb(exports.length),
  ...exports.flatMap((entry) => [...name(entry.field), ...entry.desc])
]
const rewritten = Buffer.concat([
  wasm.subarray(0, section.start),
  Buffer.from([2, ...leb(body.length), ...body]),
  wasm.subarray(section.end, exportSection.start),
  Buffer.from([7, ...leb(exportBody.length), ...exportBody]),
  wasm.subarray(exportSection.end)
])
writeFileSync(wasmPath, rewritten)
writeFileSync(jsPath, js)
console.error(`shorten-glue-names: ${imports.length} imports and ${nextExport} exports renamed; wasm ${wasm.length} -> ${rewritten.length} bytes`)
