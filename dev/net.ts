// Loopback ports and listening for the local servers of tests, benchmarks and `npm run dev`.
import { createServer, type Server, type Socket } from 'node:net'
import { once } from 'node:events'

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  await new Promise((resolve) => server.close(resolve))
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

/** A local server that can stop listening, its open connections cut, and listen again on the same port. */
export interface Loopback {
  /** Listens on 127.0.0.1:`port` (0: any free port) and resolves to the port. */
  listen: (port: number) => Promise<number>
  /** Stops listening and destroys every open connection (what "the port is refused" means); nothing when stopped. */
  stop: () => Promise<void>
  readonly listening: boolean
  readonly openConnections: number
}

/** Tracks the connections of `server`, which must not be listening yet; `name` says whose address is missing. */
export function loopback (server: Server, name: string): Loopback {
  const sockets = new Set<Socket>()
  let listening = false
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  return {
    async listen (port) {
      server.listen(port, '127.0.0.1')
      await once(server, 'listening')
      listening = true
      const address = server.address()
      if (address === null || typeof address === 'string') throw new Error(`${name} has no TCP address`)
      return address.port
    },
    async stop () {
      if (!listening) return
      listening = false
      const closed = new Promise((resolve) => server.close(resolve))
      for (const socket of sockets) socket.destroy()
      await closed
    },
    get listening () { return listening },
    get openConnections () { return sockets.size }
  }
}
