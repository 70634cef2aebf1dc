// An independent CAR implementation (@ipld/car) for the cross-check tests:
//   node scripts/js/car-check.mjs read FILE.car           -> {"roots": [...], "blocks": [...], "ok": true}
//       (every block's sha2-256 checked against its CID; exit 1 on mismatch)
//   node scripts/js/car-check.mjs write FILE OUT.car [kubo-v0|kubo-v1]
//       imports FILE with ipfs-unixfs-importer and writes its DAG as a CAR v1; prints the root CID
import { readFile, writeFile } from 'node:fs/promises'
import { createReadStream } from 'node:fs'
import { CarReader, CarWriter } from '@ipld/car'
import { sha256 } from 'multiformats/hashes/sha2'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

async function read (path) {
  const reader = await CarReader.fromBytes(await readFile(path))
  const roots = (await reader.getRoots()).map(String)
  const blocks = []
  for await (const { cid, bytes } of reader.blocks()) {
    const digest = await sha256.digest(bytes)
    if (cid.multihash.code !== sha256.code || !equal(digest.digest, cid.multihash.digest)) {
      throw new Error(`block ${cid} does not match its bytes`)
    }
    blocks.push(cid.toString())
  }
  process.stdout.write(JSON.stringify({ roots, blocks, ok: true }) + '\n')
}

function equal (a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i])
}

async function write (file, out, profile) {
  const v0 = profile === 'kubo-v0'
  const blocks = []
  const store = { put: async (cid, bytes) => { blocks.push({ cid, bytes }); return cid } }
  let last
  const options = {
    cidVersion: v0 ? 0 : 1,
    rawLeaves: !v0,
    reduceSingleLeafToSelf: true,
    chunker: fixedSize({ chunkSize: 262144 }),
    layout: balanced({ maxChildrenPerNode: 174 })
  }
  for await (const entry of importer([{ content: createReadStream(file) }], store, options)) last = entry
  const { writer, out: stream } = CarWriter.create([last.cid])
  const chunks = []
  const collect = (async () => { for await (const c of stream) chunks.push(c) })()
  for (const b of blocks) await writer.put(b)
  await writer.close()
  await collect
  await writeFile(out, Buffer.concat(chunks))
  process.stdout.write(last.cid.toString() + '\n')
}

const [cmd, ...args] = process.argv.slice(2)
const run = cmd === 'read' ? read(args[0]) : cmd === 'write' ? write(args[0], args[1], args[2] ?? 'kubo-v1') : null
if (!run) {
  process.stderr.write('usage: car-check.mjs read FILE.car | write FILE OUT.car [profile]\n')
  process.exit(2)
}
run.catch((err) => { process.stderr.write(String(err) + '\n'); process.exit(1) })
