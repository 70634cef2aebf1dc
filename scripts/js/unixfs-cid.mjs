// Imports bytes with the npm ipfs-unixfs-importer and prints the root CID, so the Python importer
// can be cross-checked against an independent implementation (tests) and timed against it (bench).
//
//   node scripts/js/unixfs-cid.mjs --file PATH --profile kubo-v1      -> prints the CID
//   node scripts/js/unixfs-cid.mjs --dir PATH --profile kubo-v1       -> the CID of the tree (as `ipfs add -r`,
//       hidden entries left out; unixfs-v1-2025 uses the importer's own IPIP-499 profile)
//   node scripts/js/unixfs-cid.mjs --serve                            -> one JSON request per stdin line:
//       {"size": N, "chunk": 262144, "rawLeaves": true, "cidVersion": 1, "maxLinks": 174}
//     answers {"size": N, "cid": "..."} per line; the bytes are the "fast stream" that
//     tests/_content_fixtures.py:fast_stream generates too (64 KiB blocks of xorshift32 output
//     XOR k*0x9E3779B1), so no test file ever has to be written to disk.
import { createReadStream, readdirSync, lstatSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

const PROFILES = {
  'kubo-v0': { chunk: 262144, rawLeaves: false, cidVersion: 0, maxLinks: 174 },
  'kubo-v1': { chunk: 262144, rawLeaves: true, cidVersion: 1, maxLinks: 174 },
  'unixfs-v1-2025': { chunk: 1048576, rawLeaves: true, cidVersion: 1, maxLinks: 1024 }
}

// Discards blocks: only the CID is wanted, and memory must stay flat on GiB inputs.
const nullBlockstore = { put: async (cid) => cid }

function options (p) {
  return {
    cidVersion: p.cidVersion,
    rawLeaves: p.rawLeaves,
    leafType: 'file',
    reduceSingleLeafToSelf: true,
    chunker: fixedSize({ chunkSize: p.chunk }),
    layout: balanced({ maxChildrenPerNode: p.maxLinks })
  }
}

function * treeEntries (root, rel = '') {
  for (const name of readdirSync(join(root, rel)).sort()) {
    if (name.startsWith('.')) continue
    const path = rel ? `${rel}/${name}` : name
    const st = lstatSync(join(root, path))
    if (st.isDirectory()) yield * treeEntries(root, path)
    else yield { path: `root/${path}`, content: createReadStream(join(root, path), { highWaterMark: 4 << 20 }) }
  }
}

async function treeCid (root, name) {
  const opts = name === 'unixfs-v1-2025'
    ? { profile: 'unixfs-v1-2025' }
    : { ...options(PROFILES[name]), shardSplitStrategy: 'links-bytes' }
  let last
  for await (const entry of importer(treeEntries(root), nullBlockstore, opts)) {
    if (entry.path === 'root') last = entry
  }
  return last.cid.toString()
}

async function cidOf (content, p) {
  let last
  for await (const entry of importer([{ content }], nullBlockstore, options(p))) last = entry
  return last.cid.toString()
}

function pool () {
  const out = new Uint32Array(16384)
  let x = 2463534242
  for (let i = 0; i < out.length; i++) {
    x = (x ^ (x << 13)) >>> 0
    x = (x ^ (x >>> 17)) >>> 0
    x = (x ^ (x << 5)) >>> 0
    out[i] = x
  }
  return out
}

const POOL = pool()

function * fastStream (size) {
  const block = 65536
  const per = 64
  let k = 0
  let left = size
  while (left > 0) {
    const nblocks = Math.min(per, Math.ceil(left / block))
    const arr = new Uint32Array(nblocks * 16384)
    for (let b = 0; b < nblocks; b++) {
      const key = Math.imul(k + b, 0x9E3779B1) >>> 0
      const base = b * 16384
      for (let i = 0; i < 16384; i++) arr[base + i] = (POOL[i] ^ key) >>> 0
    }
    const bytes = new Uint8Array(arr.buffer, 0, Math.min(arr.byteLength, left))
    yield bytes
    left -= bytes.length
    k += nblocks
  }
}

async function serve () {
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity })
  for await (const line of rl) {
    if (!line.trim()) continue
    const req = JSON.parse(line)
    try {
      const cid = await cidOf(fastStream(req.size), req)
      process.stdout.write(JSON.stringify({ size: req.size, cid }) + '\n')
    } catch (err) {
      process.stdout.write(JSON.stringify({ size: req.size, error: String(err) }) + '\n')
    }
  }
}

async function main () {
  const args = process.argv.slice(2)
  if (args.includes('--serve')) return serve()
  if (args.includes('--dir')) {
    const name = args.includes('--profile') ? args[args.indexOf('--profile') + 1] : 'kubo-v1'
    process.stdout.write(await treeCid(args[args.indexOf('--dir') + 1], name) + '\n')
    return
  }
  const file = args[args.indexOf('--file') + 1]
  const name = args.includes('--profile') ? args[args.indexOf('--profile') + 1] : 'kubo-v1'
  const p = PROFILES[name]
  if (!file || args.indexOf('--file') < 0 || !p) {
    process.stderr.write('usage: unixfs-cid.mjs --file PATH [--profile kubo-v0|kubo-v1|unixfs-v1-2025] | --serve\n')
    process.exit(2)
  }
  process.stdout.write(await cidOf(createReadStream(file, { highWaterMark: 4 << 20 }), p) + '\n')
}

main().catch((err) => { process.stderr.write(String(err) + '\n'); process.exit(1) })
