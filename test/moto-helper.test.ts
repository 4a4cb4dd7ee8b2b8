// Without moto the moto tests do not run and say so; with REQUIRE_MOTO=1 that is a failure.
import t from 'tap'
import { MOTO_INSTALL, findMotoServer, withMoto } from './helpers/moto.js'

function recorder (): { tap: Parameters<typeof withMoto>[0], comments: string[], failures: string[], ran: string[] } {
  const comments: string[] = []
  const failures: string[] = []
  const ran: string[] = []
  const tap = {
    teardown: () => {},
    comment: (...args: unknown[]) => { comments.push(args.join(' ')) },
    fail: (message: string) => { failures.push(message); return false },
    test: async (name: string) => { ran.push(name) }
  }
  return { tap, comments, failures, ran }
}

t.test('no moto_server on PATH: the test is not run, and a comment names it and how to get moto', async (t) => {
  t.equal(findMotoServer(''), undefined)
  const r = recorder()
  await withMoto(r.tap, 'some moto test', async () => { t.fail('must not run') }, { PATH: '' })
  t.same(r.ran, [])
  t.same(r.failures, [])
  t.equal(r.comments.length, 1)
  t.match(r.comments[0], /NOT RUN.*"some moto test".*pipx install 'moto\[server\]'/)
  t.ok(r.comments[0]?.includes(MOTO_INSTALL))
})

t.test('REQUIRE_MOTO=1 without moto_server: a failure, not a silent pass', async (t) => {
  const r = recorder()
  await withMoto(r.tap, 'some moto test', async () => { t.fail('must not run') }, { PATH: '', REQUIRE_MOTO: '1' })
  t.same(r.ran, [])
  t.equal(r.failures.length, 1)
  t.match(r.failures[0], /REQUIRE_MOTO=1.*"some moto test"/)
})
