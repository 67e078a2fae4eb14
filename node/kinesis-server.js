#!/usr/bin/env node
// The stack's Kinesis server: kinesalite with its streams in LevelDB under KINESIS_DATA_DIR.
// kinesalite writes each PutRecords batch to LevelDB's log before it answers, so an
// acknowledged record survives a stop or a SIGKILL of this process (not a crash of the machine:
// the log is not fsynced). Its CLI cannot choose the listening address; this does, so the local
// stack listens on loopback only.
//   KINESIS_HOST (127.0.0.1), KINESIS_PORT (4568), KINESIS_DATA_DIR (required)
'use strict'

const kinesalite = require('kinesalite')

const host = process.env.KINESIS_HOST || '127.0.0.1'
const port = Number(process.env.KINESIS_PORT || 4568)
const path = process.env.KINESIS_DATA_DIR
if (!path) {
  console.error('KINESIS_DATA_DIR is not set: the streams would live in memory only')
  process.exit(2)
}

// AWS takes seconds to create a stream; the stack's callers poll until it is ACTIVE
const server = kinesalite({ path, createStreamMs: 100, deleteStreamMs: 100, updateStreamMs: 100 })
server.listen(port, host, () => {
  console.log(`kinesalite listening on http://${host}:${port}, streams in ${path}`)
})

// Every acknowledged batch is already in LevelDB's log: stop at once (PID 1 in a container
// gets no default handler for these).
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    console.log(`kinesalite: ${signal}, stopping`)
    process.exit(0)
  })
}
