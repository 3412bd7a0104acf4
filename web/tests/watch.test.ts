// The live watcher against a scripted EventSource and fetch: SSE updates, catch-up on open,
// fallback to polling, ordering by version, and stopping at a final status.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { PaymentClient, type PublicPayment } from '../src/api/client'
import { watchPayment, type Transport, type Update } from '../src/live/watch'

class FakeEventSource {
  static last: FakeEventSource | null = null
  readyState = 0
  closed = false
  private listeners = new Map<string, ((ev: unknown) => void)[]>()
  constructor(readonly url: string) {
    FakeEventSource.last = this
  }
  addEventListener(type: string, fn: (ev: unknown) => void) {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), fn])
  }
  close() {
    this.closed = true
    this.readyState = 2
  }
  emit(type: string, ev: unknown = {}) {
    for (const fn of this.listeners.get(type) ?? []) fn(ev)
  }
  open() {
    this.readyState = 1
    this.emit('open')
  }
  update(u: Partial<Update>) {
    this.emit('paymentUpdate', { data: JSON.stringify(u) })
  }
}

function view(status: PublicPayment['status'], version: number): PublicPayment {
  return {
    id: 'pay_1',
    orderId: 'ord_1',
    provider: 'kpay',
    method: 'kpay_qr',
    amount: 100,
    currency: 'TWD',
    status,
    expiresAt: '2026-11-22T08:15:00.000Z',
    version,
    updatedAt: '2026-11-22T08:00:00.000Z',
    livemode: false,
  }
}

function fetchReturning(...views: PublicPayment[]) {
  let i = 0
  return vi.fn(async () => {
    const v = views[Math.min(i++, views.length - 1)]
    return new Response(JSON.stringify({ success: true, data: v }), { status: 200 })
  }) as unknown as typeof fetch & ReturnType<typeof vi.fn>
}

const client = new PaymentClient('http://jinliu.test', 'pay_1', 'pay_1_secret_abc')

describe('watchPayment', () => {
  beforeEach(() => {
    vi.useFakeTimers()
    FakeEventSource.last = null
  })
  afterEach(() => vi.useRealTimers())

  it('listens to the SSE stream of the payment with its client secret', () => {
    watchPayment({ client, onUpdate: () => {}, EventSourceImpl: FakeEventSource as never, fetchImpl: fetchReturning() })
    expect(FakeEventSource.last?.url).toBe(
      'http://jinliu.test/api/payments/pay_1/events?clientSecret=pay_1_secret_abc',
    )
  })

  it('delivers newer versions only and stops at a final status', async () => {
    const seen: Update[] = []
    const fetchImpl = fetchReturning(view('pending', 1))
    const w = watchPayment({
      client,
      version: 1,
      onUpdate: (u) => seen.push(u),
      EventSourceImpl: FakeEventSource as never,
      fetchImpl,
    })
    const es = FakeEventSource.last!
    es.update({ status: 'processing', version: 2 })
    es.update({ status: 'pending', version: 1 })
    es.update({ status: 'processing', version: 2 })
    es.update({ status: 'completed', version: 3 })
    es.update({ status: 'refunded', version: 4 })
    expect(seen.map((u) => [u.status, u.version])).toEqual([
      ['processing', 2],
      ['completed', 3],
    ])
    expect(es.closed).toBe(true)
    expect(w.transport).toBe('stopped')
  })

  it('fetches the public view once when the stream opens, to catch a change made before it', async () => {
    const seen: Update[] = []
    const fetchImpl = fetchReturning(view('completed', 3))
    watchPayment({ client, version: 1, onUpdate: (u) => seen.push(u), EventSourceImpl: FakeEventSource as never, fetchImpl })
    FakeEventSource.last!.open()
    await vi.waitFor(() => expect(seen.map((u) => u.status)).toEqual(['completed']))
  })

  it('falls back to polling when the server refuses the stream', async () => {
    const transports: Transport[] = []
    const seen: Update[] = []
    const fetchImpl = fetchReturning(view('pending', 1), view('pending', 1), view('failed', 2))
    watchPayment({
      client,
      version: 1,
      pollMs: 1000,
      onUpdate: (u) => seen.push(u),
      onTransport: (t) => transports.push(t),
      EventSourceImpl: FakeEventSource as never,
      fetchImpl,
    })
    const es = FakeEventSource.last!
    es.readyState = 2
    es.emit('error')
    expect(es.closed).toBe(true)
    await vi.advanceTimersByTimeAsync(1000)
    await vi.advanceTimersByTimeAsync(1000)
    expect(seen.map((u) => u.status)).toEqual(['failed'])
    expect(transports).toEqual(['sse', 'polling', 'stopped'])
    const calls = fetchImpl.mock.calls.length
    await vi.advanceTimersByTimeAsync(5000)
    expect(fetchImpl.mock.calls.length, 'no polling after the final status').toBe(calls)
  })

  it('falls back to polling after repeated stream errors while reconnecting', () => {
    const transports: Transport[] = []
    watchPayment({
      client,
      maxSseErrors: 3,
      onUpdate: () => {},
      onTransport: (t) => transports.push(t),
      EventSourceImpl: FakeEventSource as never,
      fetchImpl: fetchReturning(view('pending', 1)),
    })
    const es = FakeEventSource.last!
    es.emit('error')
    es.emit('error')
    expect(transports).toEqual(['sse'])
    es.emit('error')
    expect(transports).toEqual(['sse', 'polling'])
  })

  it('polls when the browser has no EventSource', async () => {
    const seen: Update[] = []
    const fetchImpl = fetchReturning(view('completed', 2))
    watchPayment({ client, version: 1, onUpdate: (u) => seen.push(u), EventSourceImpl: undefined, fetchImpl })
    await vi.waitFor(() => expect(seen.map((u) => u.status)).toEqual(['completed']))
  })
})
